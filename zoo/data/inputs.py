"""New inputs for a trained run (zoo predict): read in the formats the data options read, checked
by zoo.data.validate as training files are, and put through the preprocessing the run stored
(zoo.data.preprocess), as training batches were."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

import zoo.data.images as images
import zoo.data.preprocess as preprocess
import zoo.data.tables as tables
import zoo.data.timeseries as timeseries
import zoo.data.validate as validate
from zoo.errors import ConfigError

WHAT = "an .npz, .npy, .csv, .tsv or image file or folder"


@dataclasses.dataclass
class Inputs:
    """Model inputs x [N, ...] read from `file`, and for images the path of each row's image."""
    file: Path
    x: np.ndarray
    paths: list[str] | None = None


def read_inputs(path: str | Path, preprocessing: dict) -> Inputs:
    """Model inputs from a file of new examples (labels not needed): an .npz/.npy, a .csv/.tsv
    with the training columns (others ignored), or a folder (or file) of images. No rows, a
    wrong shape, kind or column: one line naming the file."""
    file = validate.existing(str(path), "--input", WHAT)
    if preprocessing.get("format") == "image_folder":
        files = images.input_files(file)
        raw = images.decode(files, tuple(preprocessing["image_size"]), preprocessing["mode"])
        return Inputs(file, _applied(file, preprocessing, raw), [str(f) for f in files])
    if preprocessing.get("format") in ("ts", "ucr_tsv"):
        return Inputs(file, timeseries.read_inputs(file, preprocessing))
    fmt = tables.file_format(file, "--input")
    if fmt in ("csv", "tsv"):
        raw = _table_inputs(file, fmt, preprocessing)
    elif fmt == "npy":
        raw = tables.load_npy(file)
    else:
        raw = _npz_inputs(file, preprocessing)
    validate.rows(len(raw) if raw.ndim else 0, file)
    validate.features(raw, str(file), preprocessing.get("dtype", "float32"))
    return Inputs(file, _applied(file, preprocessing, raw))


def _applied(file: Path, preprocessing: dict, raw: np.ndarray) -> np.ndarray:
    try:
        return preprocess.apply(preprocessing, raw)
    except ConfigError as e:
        raise ConfigError(f"{file}: {e}") from None


def _table_inputs(file: Path, fmt: str, preprocessing: dict) -> np.ndarray:
    trained = preprocessing.get("columns")
    if trained:
        header = tables.read_header(file, fmt)
        missing = [c for c in trained if c not in header]
        if missing:
            raise ConfigError(f"{file} has no column {missing[0]!r}"
                              f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}, which the model "
                              f"was trained on; its columns are {', '.join(header)}; give the training columns "
                              f"{', '.join(trained)}")
        return tables.read_table(file, fmt, trained, None).x
    label = preprocessing.get("label")
    header = tables.read_header(file, fmt)
    return tables.read_table(file, fmt, [c for c in header if c != label], None).x


def _npz_inputs(file: Path, preprocessing: dict) -> np.ndarray:
    names = tables.npz_names(file)
    candidates = [preprocessing.get("x_key"), "x", "x_test"] + (names if len(names) == 1 else [])
    for name in candidates:
        if name in names:
            return tables.load_npz(file, {"--input": name})[name]
    raise ConfigError(f"{file}: no input array {preprocessing.get('x_key', 'x')!r} (it has {', '.join(names)}); "
                      f"save the inputs under that name")
