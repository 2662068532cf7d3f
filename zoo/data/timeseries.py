"""`timeseries`: classification on the UCR/UEA time-series archives' files, read from a path.

    data.path=GunPoint_TRAIN.ts      the archive's training file; its test split is the _TEST file
                                     beside it (or data.test_path); a folder holding one pair works too
    .ts    the sktime/aeon format: `#` comments, `@` header lines (@problemName, @univariate,
           @dimensions, @equalLength, @classLabel true <classes>, ...), then after `@data` one case
           per line: channels separated by `:`, values by `,`, the class last
    .tsv   the UCR 2018 archive's: one case per line, the class first, then the values by tabs;
           a shorter series of an unequal-length set is padded with trailing NaN

Axis legend: N cases, T the longest series of either split, D channels, B batch.

Inputs: float32 [N, T, D] when every series has T steps; otherwise {"x": [N, T, D], "lengths":
[N]}, each series padded with zeros after its last step, the layout the recurrent models take
(zoo.models.recurrent: padding steps never change a real step's output). Classes are numbered in
the order the .ts header declares them (sorted for a .tsv), and stored as class names.

data.standardize: `series` z-normalises every series, channel by channel, over its real steps
(the UCR convention, and dl-4-tsc's preprocessing, Fawaz et al. 2019); `channel` subtracts each
channel's mean over the training split's real steps and divides by its deviation (stored in
preprocessing.json, as the `array` data's statistics are); `none` reads the values as they are;
`auto` (the default) is `series` for classification and `channel` for data.task=irregular.
`zoo predict` reads new series from a file of the training file's format, labels optional.

A .ts with `@timeStamps true` gives every point a time: zoo.data.timestamped says what the
classifiers (data.task=classification: the gaps as one more channel) and the irregular-series
models (data.task=irregular: ode_rnn, latent_ode, gru_gaps) make of them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np

import zoo.data.preprocess as preprocess
import zoo.data.timestamped as timestamped
import zoo.data.validate as validate
from zoo.data.base import ArrayDataset
from zoo.errors import ConfigError

FORMATS = {".ts": "ts", ".tsv": "ucr_tsv"}
WHAT = "a .ts (aeon/sktime) or UCR .tsv file, or a folder holding NAME_TRAIN and NAME_TEST files"


@dataclasses.dataclass(frozen=True)
class TimeseriesConfig:
    path: str | None = None          # NAME_TRAIN.ts/.tsv (test split: NAME_TEST beside it), or their folder
    test_path: str | None = None     # None: the _TEST file beside data.path
    standardize: Literal["auto", "none", "series", "channel"] = "auto"  # auto: series to classify, channel (irregular)
    val_size: int = 0                # the last N training cases validate (train.select)
    task: Literal["classification", "irregular"] = "classification"  # irregular: a timestamped .ts for ode_rnn & co.
    time_unit: Literal["seconds", "minutes", "hours", "days"] = "seconds"  # date-time stamps' gaps in this unit
    observed_fraction: float = 0.5   # irregular: each context point observed with this probability (the first always)
    context_fraction: float = 0.5    # irregular: points after this part of a series' time span extrapolate (1: none)
    seed: int = 0                    # irregular: the draw of observed points (training file; test file: seed + 1)


@dataclasses.dataclass
class Series:
    """What one file holds: series [T_i, D] float64 each, their class labels (None when the file
    has none), the classes its header declares (a .ts; [] otherwise) and, for a .ts with
    @timeStamps true, each series' times [T_i] (offsets from its first point, zoo.data.timestamped)
    and their kind ("number" or "date-time")."""
    file: Path
    values: list[np.ndarray]
    labels: list[str] | None
    declared: list[str]
    times: list[np.ndarray] | None = None
    time_kind: str | None = None


# ----------------------------------------------------------------------------- reading
def _numbers(cells: list[str], file: Path, line: int) -> np.ndarray:
    try:
        return np.array([float(c) for c in cells], np.float64)
    except ValueError:
        bad = next(c for c in cells if not _is_float(c))
        hint = "a missing value: fill it in" if bad.strip() in ("?", "") else "not a number"
        raise ConfigError(f"{file} line {line}: {bad.strip()!r} is {hint}; give every step a number") from None


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _ts_header(lines: list[str], file: Path) -> tuple[dict[str, str], int]:
    """The @ tags (lower-cased) and the index of the first line after @data."""
    tags = {}
    for i, line in enumerate(lines):
        s = line.strip()
        if not s or s.startswith(("#", "%")):   # % as aeon's bundled files (and ARFF) comment
            continue
        if not s.startswith("@"):
            raise ConfigError(f"{file} line {i + 1}: {s[:40]!r} before @data; a .ts file's header lines start "
                              f"with @ and its cases follow a line @data")
        tag, _, value = s[1:].partition(" ")
        if tag.lower() == "data":
            return tags, i + 1
        tags[tag.lower()] = value.strip()
    raise ConfigError(f"{file}: no @data line; not a .ts file (the aeon/sktime format: @ header lines, @data, "
                      f"one case per line)")


def read_ts(file: Path, need_labels: bool = True) -> Series:
    lines = validate.read_text(file).splitlines()
    tags, start = _ts_header(lines, file)
    clock = validate.Timestamps(file) if tags.get("timestamps", "false").lower() == "true" else None
    label_tag = tags.get("classlabel", "false").split()
    labelled = bool(label_tag) and label_tag[0].lower() == "true"
    if need_labels and not labelled:
        raise ConfigError(f"{file}: no class labels (@classLabel true <classes>); timeseries data trains classifiers")
    values, labels, times = [], [] if labelled else None, [] if clock else None
    for i in range(start, len(lines)):
        s = lines[i].strip()
        if not s or s.startswith("#"):
            continue
        if clock:
            channels, t, label = timestamped.read_case(s, file, i + 1, labelled, clock)
            times.append(t)
        else:
            channels, label = _plain_case(s, file, i + 1, labelled)
        if labelled:
            labels.append(label)
        if not all(np.isfinite(c).all() for c in channels):
            raise ConfigError(f"{file} line {i + 1}: a NaN or infinite value; give every step a finite number")
        if len({len(c) for c in channels}) != 1:
            raise ConfigError(f"{file} line {i + 1}: its channels have {[len(c) for c in channels]} steps; "
                              f"give every channel of a case the same length")
        if values and len(channels) != values[0].shape[1]:
            raise ConfigError(f"{file} line {i + 1}: {len(channels)} channels, the first case has "
                              f"{values[0].shape[1]}; give every case the same channels")
        values.append(np.stack(channels, axis=1))
    return Series(file, values, labels, label_tag[1:] if labelled else [], times, clock.kind if clock else None)


def _plain_case(s: str, file: Path, line: int, labelled: bool) -> tuple[list[np.ndarray], str | None]:
    """One data line without time stamps: (channels [T] float64 each, the label or None)."""
    fields, label = s.split(":"), None
    if labelled:
        if len(fields) < 2:
            raise ConfigError(f"{file} line {line}: no ':' before the class; a case is channel:channel:...:class")
        *fields, label = fields
        label = label.strip()
    return [_numbers(f.split(","), file, line) for f in fields], label


def read_ucr_tsv(file: Path, need_labels: bool = True) -> Series:
    """UCR 2018 .tsv: class, then the values; trailing NaN pad a shorter series (so NaN may only
    end a row). `need_labels` is accepted for symmetry: the first column is always the class."""
    values, labels = [], []
    for i, line in enumerate(validate.read_text(file).splitlines()):
        if not line.strip():
            continue
        label, *cells = line.rstrip("\r\n").split("\t")
        if not cells:
            raise ConfigError(f"{file} line {i + 1}: no tab-separated values after the class; a UCR .tsv row is "
                              f"class<TAB>value<TAB>value...")
        v = _numbers(cells, file, i + 1)
        n = len(v) - int(np.argmax(~np.isnan(v[::-1]))) if (~np.isnan(v)).any() else 0
        if n == 0 or np.isnan(v[:n]).any() or np.isinf(v).any():
            raise ConfigError(f"{file} line {i + 1}: a NaN or infinite value inside the series; NaN may only pad "
                              f"its end (UCR's unequal lengths): fill in missing values")
        values.append(v[:n, None])
        labels.append(label.strip())
    return Series(file, values, labels, [])


def read_file(file: Path, need_labels: bool = True, key: str = "data.path") -> Series:
    fmt = file_format(file, key)
    series = (read_ts if fmt == "ts" else read_ucr_tsv)(file, need_labels)
    validate.rows(len(series.values), file, "cases")
    return series


def file_format(file: Path, key: str = "data.path") -> str:
    fmt = FORMATS.get(file.suffix.lower())
    if fmt is None or not file.is_file():
        raise ConfigError(f"{key}={str(file)!r}: not a .ts or .tsv file; give {WHAT}")
    return fmt


def split_files(cfg: TimeseriesConfig) -> tuple[Path, Path]:
    """(training file, test file): data.path (or the NAME_TRAIN file in its folder) and data.test_path
    (or the NAME_TEST file beside it)."""
    path = validate.existing(cfg.path, "data.path", WHAT)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS and "_TRAIN" in p.name)
        if not found:
            raise ConfigError(f"data.path={cfg.path!r}: a folder without a *_TRAIN.ts or *_TRAIN.tsv file; give {WHAT}")
        path = found[0]
    if cfg.test_path is not None:
        return path, validate.existing(cfg.test_path, "data.test_path", "the test split's .ts or .tsv file")
    test = path.with_name(path.name.replace("_TRAIN", "_TEST"))
    if "_TRAIN" not in path.name or not test.is_file():
        raise ConfigError(f"data.path={str(path)!r}: no test split {test.name!r} beside it; give the archive's "
                          f"NAME_TRAIN file with its NAME_TEST file, or data.test_path=FILE")
    return path, test


# ----------------------------------------------------------------------------- arrays
def class_names(train: Series, test: Series) -> list[str]:
    """The .ts header's declared classes, or the training labels sorted (numerically when they
    are numbers); a test label outside them: one line."""
    names = train.declared or sorted(set(train.labels), key=lambda s: (float(s), s) if _is_float(s) else (np.inf, s))
    for series in (train, test):
        unknown = sorted(set(series.labels) - set(names))
        if unknown:
            raise ConfigError(f"{series.file}: class {unknown[0]!r} is not among the training file's classes "
                              f"{', '.join(names)}; give both splits the same classes")
    return names


def padded(values: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Series [T_i, D] -> (x float32 [N, length, D] zero-padded, lengths int32 [N])."""
    x = np.zeros((len(values), length, values[0].shape[1]), np.float32)
    for i, v in enumerate(values):
        x[i, :len(v)] = v
    return x, np.array([len(v) for v in values], np.int32)


def znormalised(values: list[np.ndarray]) -> list[np.ndarray]:
    """Each series minus its mean, over its standard deviation, per channel (zero deviation: 1)."""
    out = []
    for v in values:
        std = v.std(0)
        out.append((v - v.mean(0)) / np.where(std > 0, std, 1.0))
    return out


def channel_statistics(values: list[np.ndarray], length: int) -> dict:
    """Per-channel mean and deviation over every real step, as preprocessing's per-entry
    `standardize` of a [length, D] row."""
    steps = np.concatenate(values)
    std = steps.std(0)
    return {"mean": np.tile(steps.mean(0), length).tolist(),
            "std": np.tile(np.where(std > 0, std, 1.0), length).tolist()}


def model_inputs(values: list[np.ndarray], pre: dict):
    """What the model takes from series read from a file, with the run's preprocessing: an array
    [N, T, D], or {"x", "lengths"} for a run trained on unequal lengths."""
    length, channels = pre["input_shape"]
    too_long = [i for i, v in enumerate(values) if len(v) > length or v.shape[1] != channels]
    if too_long:
        v = values[too_long[0]]
        raise ConfigError(f"case {too_long[0]} has {len(v)} steps of {v.shape[1]} channels; the model was trained "
                          f"on at most {length} steps of {channels}")
    if pre.get("standardize_series"):
        values = znormalised(values)
    x, lengths = padded(values, length)
    x = preprocess.transform(pre)(x)
    if not pre.get("lengths"):
        if (lengths != length).any():
            raise ConfigError(f"case {int(np.argmax(lengths != length))} has {int(lengths.min())} steps; the model "
                              f"was trained on series of {length}")
        return x
    x[np.arange(length)[None, :] >= lengths[:, None]] = 0.0   # padding stays zero after standardising
    return {"x": x, "lengths": lengths}


class WithLengths:
    """Rows of {"x": [N, T, D], "lengths": [N]} indexed together, as ArrayDataset indexes arrays."""

    def __init__(self, x: np.ndarray, lengths: np.ndarray):
        self.x, self.lengths = x, lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, rows):
        if isinstance(rows, slice):
            return WithLengths(self.x[rows], self.lengths[rows])
        return {"x": self.x[rows], "lengths": self.lengths[rows]}


def load(cfg: TimeseriesConfig) -> ArrayDataset | timestamped.irregular.IrregularDataset:
    train_file, test_file = split_files(cfg)
    classify = cfg.task == "classification"
    if cfg.standardize == "auto":
        cfg = dataclasses.replace(cfg, standardize="series" if classify else "channel")
    train, test = read_file(train_file, classify), read_file(test_file, classify, key="data.test_path")
    if train.values[0].shape[1] != test.values[0].shape[1]:
        raise ConfigError(f"{test_file}: {test.values[0].shape[1]} channels, the training file has "
                          f"{train.values[0].shape[1]}; give both splits the same channels")
    if train.time_kind != test.time_kind:
        raise ConfigError(f"{test_file}: {_stamps(test)}, the training file {_stamps(train)}; give both splits "
                          f"the same kind of time stamps")
    if not classify:
        times = [timestamped.in_unit(s.times, s.time_kind, cfg.time_unit) if s.times else
                 [np.arange(len(v), dtype=np.float64) for v in s.values] for s in (train, test)]
        return timestamped.irregular_dataset(cfg, train, test, *times)
    names = class_names(train, test)
    pre = {"format": file_format(train_file), "dtype": "float32", "task": "classification", "class_names": names,
           "standardize_series": cfg.standardize == "series", "timestamps": train.time_kind,
           "time_unit": cfg.time_unit}
    train_values, test_values = series_values(train, pre), series_values(test, pre)
    all_values = train_values + test_values
    length, channels = max(len(v) for v in all_values), train_values[0].shape[1]
    unequal = len({len(v) for v in all_values}) > 1
    if not 0 <= cfg.val_size < len(train_values):
        raise ConfigError(f"data.val_size={cfg.val_size} must be in [0, {len(train_values)}) (the training cases)")
    pre.update(input_shape=[length, channels], lengths=unequal)
    if cfg.standardize == "channel":
        fit = train_values[:len(train_values) - cfg.val_size]   # the validation cases stay unseen
        pre["standardize"] = channel_statistics(fit, length)
    index = {n: i for i, n in enumerate(names)}

    def split(series: Series, values: list[np.ndarray]) -> dict:
        x = model_inputs(values, pre)
        return {"x": WithLengths(x["x"], x["lengths"]) if unequal else x,
                "y": np.array([index[label] for label in series.labels], np.int32)}

    return ArrayDataset(task="classification", model_defaults={"num_outputs": len(names)}, preprocessing=pre,
                        train=split(train, train_values), test=split(test, test_values)).hold_out(cfg.val_size)


def _stamps(series: Series) -> str:
    return f"has {series.time_kind} time stamps" if series.time_kind else "has no time stamps"


def series_values(series: Series, pre: dict) -> list[np.ndarray]:
    """What a classifier reads of a file's series: the values, and for a run trained on time
    stamps the gap to the previous point as one more channel (zoo.data.timestamped)."""
    trained = pre.get("timestamps")
    if series.time_kind != trained:
        raise ConfigError(f"{series.file} {_stamps(series)}, but the model was trained on series with "
                          f"{f'{trained} time stamps' if trained else 'none'}; give them as the training file did")
    if not series.times:
        return series.values
    return timestamped.with_gaps(series.values, timestamped.in_unit(series.times, series.time_kind,
                                                                    pre["time_unit"]))


def read_inputs(file: Path, pre: dict):
    """`zoo predict`'s inputs from a file of the run's training format (labels optional)."""
    if pre.get("task") == "irregular":
        raise ConfigError("zoo predict reads no irregular series (data.task=irregular); zoo evaluate RUN reports "
                          "the run's interpolation and extrapolation MSE")
    try:
        return model_inputs(series_values(read_file(file, need_labels=False, key="--input"), pre), pre)
    except ConfigError as e:
        raise ConfigError(e.args[0] if str(file) in e.args[0] else f"{file}: {e}") from None
