"""New inputs for a trained run (zoo predict): read in the formats the data options read and
put through the preprocessing the run stored (zoo.data.preprocess), as training batches were."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import zoo.data.images as images
import zoo.data.preprocess as preprocess
import zoo.data.tables as tables
from zoo.errors import ConfigError


def read_inputs(path: str | Path, preprocessing: dict) -> np.ndarray:
    """Model inputs [N, ...] from a file of new examples (labels not needed): an .npz/.npy, a
    .csv/.tsv with the training columns (others ignored), or a folder (or file) of images."""
    file = tables.existing_file(str(path), "--input", "an .npz, .npy, .csv, .tsv or image file or folder")
    if preprocessing.get("format") == "image_folder":
        raw = images.read_images(file, tuple(preprocessing["image_size"]), preprocessing["mode"])
        return preprocess.apply(preprocessing, raw)
    fmt = tables.file_format(file, "--input")
    if fmt in ("csv", "tsv"):
        raw = _table_inputs(file, fmt, preprocessing)
    elif fmt == "npy":
        raw = tables.load_npy(file)
    else:
        raw = _npz_inputs(file, preprocessing)
    tables.check_numeric(raw, f"{file}")
    return preprocess.apply(preprocessing, raw)


def _table_inputs(file: Path, fmt: str, preprocessing: dict) -> np.ndarray:
    header, body = tables.read_table(file, fmt)
    names = preprocessing.get("columns") or [c for c in header if c != preprocessing.get("label")]
    columns = [tables.column_index(file, header, name, "--input (a column the model was trained on)") for name in names]
    return tables.numbers(file, header, body, columns)


def _npz_inputs(file: Path, preprocessing: dict) -> np.ndarray:
    names = tables.npz_names(file)
    candidates = [preprocessing.get("x_key"), "x", "x_test"] + (names if len(names) == 1 else [])
    for name in candidates:
        if name in names:
            return tables.load_npz(file, {"--input": name})[name]
    raise ConfigError(f"{file}: no input array {preprocessing.get('x_key', 'x')!r} (it has {', '.join(names)}); "
                      f"save the inputs under that name")
