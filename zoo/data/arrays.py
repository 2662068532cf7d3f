"""`array`: the user's own examples from one file, for any model that takes rows of numbers.

    data.path=train.npz     arrays x, y (or x_train, y_train), and x_test, y_test when the file
                            has a test split; other names with data.x_key, data.y_key, ...
    data.path=x.npy         inputs, memory-mapped; labels from data.y_path=y.npy
    data.path=table.csv     a header row, one example per line; data.label names the label
                            column, data.features the feature columns (default: all the others);
                            .tsv the same with tabs

Axis legend: N examples, D... the shape of one row (any), B batch. Without a test split in the
file, round(data.test_fraction * N) rows are held out at random from data.split_seed (the same
fraction of every class when classifying); data.val_size moves the last training rows to a
validation split (train.select), as for MNIST-1D.

Labels: integers (or text, in a CSV) classify, with num_outputs = the number of classes;
floats regress, num_outputs = the number of targets per row; data.task overrides the guess.
Inputs: data.standardize subtracts the training split's mean and divides by its standard
deviation (per entry of a row; statistics computed chunk by chunk), and data.shape reshapes
each row, e.g. a CSV row of 40 values to [40, 1] for a recurrent network. Both are applied per
batch (zoo.data.preprocess), so a memory-mapped .npy is never copied whole: a batch reads its
own rows only. Integer inputs (token ids) stay int32 unless standardised or data.dtype says
otherwise.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np

import zoo.data.preprocess as preprocess
import zoo.data.tables as tables
import zoo.data.validate as validate
from zoo.data.base import ArrayDataset, Rows, held_out
from zoo.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ArrayConfig:
    path: str | None = None          # an .npz, .npy, .csv or .tsv file
    y_path: str | None = None        # with an .npy of inputs: the .npy of labels
    x_key: str | None = None         # .npz inputs; None: x_train if the file has it, else x
    y_key: str | None = None         # .npz labels; None: y_train if the file has it, else y
    x_test_key: str = "x_test"       # .npz test split, used when the file has both arrays
    y_test_key: str = "y_test"
    label: str = "label"             # .csv/.tsv: the label column
    features: tuple[str, ...] = ()   # .csv/.tsv: the feature columns; (): every column but the label
    task: Literal["auto", "classification", "regression"] = "auto"  # auto: integer labels classify
    num_classes: int | None = None   # None: the largest label + 1
    test_fraction: float = 0.2       # held out when the file has no test split
    split_seed: int = 0
    val_size: int = 0                # the last N training rows validate (train.select)
    standardize: bool = False        # (x - mean) / std with the training rows' statistics
    shape: tuple[int, ...] = ()      # each row reshaped to this; (): as stored
    dtype: Literal["auto", "float32", "int32"] = "auto"  # auto: int32 for integer inputs, else float32


@dataclasses.dataclass
class Raw:
    """What a file holds: inputs x [N, ...] (maybe memory-mapped), labels y [N] or [N, k], a
    test split when the file has one, and how they were read (preprocessing keys)."""
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    read: dict
    class_names: list[str] | None = None    # a table's text labels: y holds indices into these


def read(cfg: ArrayConfig) -> Raw:
    file = tables.existing_file(cfg.path)
    fmt = tables.file_format(file)
    if fmt == "npy":
        return _read_npy(cfg, file)
    if fmt == "npz":
        return _read_npz(cfg, file)
    return _read_table(cfg, file, fmt)


def _read_npy(cfg: ArrayConfig, file: Path) -> Raw:
    if cfg.y_path is None:
        raise ConfigError(f"{file} holds inputs only; give the labels with data.y_path=<labels>.npy")
    labels = tables.existing_file(cfg.y_path, "data.y_path", "an .npy file of labels")
    if tables.file_format(labels, "data.y_path") != "npy":
        raise ConfigError(f"data.y_path={cfg.y_path!r}: give an .npy file of labels beside the .npy of inputs")
    return Raw(tables.load_npy(file), np.asarray(tables.load_npy(labels)), None, None, {"format": "npy"})


def _read_npz(cfg: ArrayConfig, file: Path) -> Raw:
    present = tables.npz_names(file)
    x_key = cfg.x_key or ("x_train" if "x_train" in present else "x")
    y_key = cfg.y_key or ("y_train" if "y_train" in present else "y")
    names = {"data.x_key": x_key, "data.y_key": y_key}
    test = [k for k in (cfg.x_test_key, cfg.y_test_key) if k in present]
    if len(test) == 1:
        raise ConfigError(f"{file} has {test[0]!r} but not its partner ({cfg.x_test_key!r} and {cfg.y_test_key!r} "
                          f"go together); save both, or neither to hold out data.test_fraction")
    if test:
        names.update({"data.x_test_key": cfg.x_test_key, "data.y_test_key": cfg.y_test_key})
    a = tables.load_npz(file, names)
    return Raw(a[x_key], a[y_key], a.get(cfg.x_test_key) if test else None, a.get(cfg.y_test_key) if test else None,
               {"format": "npz", "x_key": x_key, "label": y_key})


def _read_table(cfg: ArrayConfig, file: Path, fmt: str) -> Raw:
    if cfg.label in cfg.features:
        raise ConfigError(f"data.features names the label column {cfg.label!r}; leave it out of the features")
    table = tables.read_table(file, fmt, cfg.features, cfg.label)
    y, names = table.labels.result()
    return Raw(table.x, y, None, None, {"format": fmt, "columns": table.columns, "label": cfg.label}, names)


# ----------------------------------------------------------------------------- checks
def _check_lengths(raw: Raw, file: str) -> None:
    pairs = [("x", raw.x, "y", raw.y)]
    if raw.x_test is not None:
        pairs.append(("x_test", raw.x_test, "y_test", raw.y_test))
    validate.lengths(pairs, file)
    validate.rows(len(raw.x), file)
    if raw.x_test is not None and raw.x_test.shape[1:] != raw.x.shape[1:]:
        raise ConfigError(f"{file}: test rows have shape {list(raw.x_test.shape[1:])}, training rows "
                          f"{list(raw.x.shape[1:])}; give both splits rows of one shape")


def _check_shape(cfg: ArrayConfig, row_shape: tuple[int, ...]) -> None:
    if cfg.shape and int(np.prod(cfg.shape)) != int(np.prod(row_shape)):
        raise ConfigError(f"data.shape={list(cfg.shape)} has {int(np.prod(cfg.shape))} entries but each row has "
                          f"{int(np.prod(row_shape))} (shape {list(row_shape)}); give a shape of that many entries")


def _dtype(cfg: ArrayConfig, x: np.ndarray) -> str:
    if cfg.standardize and cfg.dtype == "int32":
        raise ConfigError("data.standardize=true gives float inputs; drop data.dtype=int32 or the standardisation")
    if cfg.dtype != "auto":
        return cfg.dtype
    return "int32" if x.dtype.kind in "biu" and not cfg.standardize else "float32"


# ----------------------------------------------------------------------------- statistics
def moments(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation [D...] over the given rows of x [N, D...], read chunk by
    chunk (Chan et al.'s pairwise update, in float64); zero deviations become 1."""
    n, mean, m2 = 0, 0.0, 0.0
    row_bytes = x.dtype.itemsize * int(np.prod(x.shape[1:], dtype=np.int64))
    for start, stop in validate.row_chunks(len(rows), row_bytes):
        chunk = np.asarray(x[rows[start:stop]], np.float64)
        k, chunk_mean = len(chunk), chunk.mean(axis=0)
        delta = chunk_mean - mean
        m2 = m2 + ((chunk - chunk_mean) ** 2).sum(axis=0) + delta ** 2 * n * k / (n + k)
        mean = mean + delta * k / (n + k)
        n += k
    std = np.sqrt(m2 / n)
    return mean, np.where(std > 0, std, 1.0)


# ----------------------------------------------------------------------------- the dataset
def _split(cfg: ArrayConfig, raw: Raw, y: np.ndarray, task: str) -> tuple[Rows, np.ndarray, Rows, np.ndarray]:
    """(x_train rows, y_train, x_test rows, y_test), the rows not yet transformed."""
    if raw.x_test is not None:
        n = len(raw.x)
        return Rows(raw.x), y[:n], Rows(raw.x_test), y[n:]
    if not 0 < cfg.test_fraction < 1:
        raise ConfigError(f"data.test_fraction={cfg.test_fraction} must be in (0, 1): the file has no test split")
    train, test = held_out(len(raw.x), cfg.test_fraction, cfg.split_seed, y if task == "classification" else None)
    if len(test) == 0 or len(train) == 0:
        raise ConfigError(f"{cfg.path}: data.test_fraction={cfg.test_fraction} of its {len(raw.x)} rows leaves an "
                          f"empty split; give more rows or another fraction")
    return Rows(raw.x, train), y[train], Rows(raw.x, test), y[test]


def _preprocessing(cfg: ArrayConfig, raw: Raw, x_train: Rows, task: str, names: list[str] | None) -> dict:
    pre = {**raw.read, "input_shape": list(raw.x.shape[1:]), "dtype": _dtype(cfg, raw.x), "task": task}
    if cfg.standardize:
        fit_rows = x_train.index[:len(x_train) - cfg.val_size]   # the validation rows stay unseen
        mean, std = moments(raw.x, fit_rows)
        pre["standardize"] = {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()}
    if cfg.shape:
        pre["shape"] = list(cfg.shape)
    if names is not None:
        pre["class_names"] = [str(n) for n in names]
    return pre


def load(cfg: ArrayConfig) -> ArrayDataset:
    raw = read(cfg)
    _check_lengths(raw, cfg.path)
    _check_shape(cfg, raw.x.shape[1:])
    for name, x in (("x", raw.x), ("x_test", raw.x_test)):
        if x is not None:
            validate.features(x, f"{cfg.path}: inputs ({name})", _dtype(cfg, raw.x))
    y_all = raw.y if raw.y_test is None else np.concatenate([raw.y, raw.y_test])
    y, task, names = validate.targets(y_all, cfg.task, cfg.num_classes, f"{cfg.path}: labels", raw.class_names)
    x_train, y_train, x_test, y_test = _split(cfg, raw, y, task)
    if not 0 <= cfg.val_size < len(x_train):
        raise ConfigError(f"data.val_size={cfg.val_size} must be in [0, {len(x_train)}) (the training rows)")
    pre = _preprocessing(cfg, raw, x_train, task, names)
    apply = preprocess.transform(pre)
    outputs = y.shape[1] if task == "regression" else cfg.num_classes or (len(names) if names else int(y.max()) + 1)
    return ArrayDataset(task=task, model_defaults={"num_outputs": outputs}, preprocessing=pre,
                        train={"x": Rows(x_train.source, x_train.index, apply), "y": y_train},
                        test={"x": Rows(x_test.source, x_test.index, apply), "y": y_test}).hold_out(cfg.val_size)
