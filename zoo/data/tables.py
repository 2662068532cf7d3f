"""Reading the user's array files: `.npz`, `.npy` (memory-mapped) and `.csv`/`.tsv` (a header
row), and checking what they hold. Every mistake is one ConfigError line naming the file and the
key, row or column, and the fix; nothing here wraps an unexpected exception.

Rows are counted from 0 in arrays; CSV mistakes name the line of the file (the header is line 1).
"""
from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from zoo.errors import ConfigError

FORMATS = {".npz": "npz", ".npy": "npy", ".csv": "csv", ".tsv": "tsv"}
CHUNK_BYTES = 1 << 23          # rows read at a time when scanning an array (8 MB: small temporaries)


def existing_file(path: str | None, key: str = "data.path", what: str = "an .npz, .npy, .csv or .tsv file") -> Path:
    if path is None:
        raise ConfigError(f"{key} is required: give the path of {what}")
    file = Path(path).expanduser()
    if not file.exists():
        raise ConfigError(f"{key}={path!r}: no such file or folder; give the path of {what}")
    return file


def file_format(file: Path, key: str = "data.path") -> str:
    fmt = FORMATS.get(file.suffix.lower())
    if fmt is None or not file.is_file():
        raise ConfigError(f"{key}={str(file)!r}: not a file ending in {', '.join(FORMATS)}; "
                          f"save the data in one of those formats")
    return fmt


# ----------------------------------------------------------------------------- numpy files
def _object_array(file: Path, name: str) -> ConfigError:
    return ConfigError(f"{file}: {name} holds Python objects (ragged rows or mixed types), which zoo "
                       f"does not unpickle; save rows of equal length as one numeric array")


def load_npy(file: Path) -> np.ndarray:
    """The array of an .npy file, memory-mapped (read from disk only where indexed)."""
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e) or "Python objects" in str(e):
            raise _object_array(file, "the array") from None
        raise ConfigError(f"{file}: not a readable .npy file ({e}); save it with numpy.save") from None


def load_npz(file: Path, names: dict[str, str]) -> dict[str, np.ndarray]:
    """Arrays of an .npz read once into memory (members of a zip cannot be memory-mapped):
    `names` maps the config key that names each array ("data.x_key") to its name in the file."""
    try:
        with np.load(file, allow_pickle=False) as f:
            for key, name in names.items():
                if name not in f.files:
                    raise ConfigError(f"{file} has no array {name!r} (it has {', '.join(f.files)}); "
                                      f"set {key}=<name> to the one that holds it")
            return {name: _member(f, file, name) for name in names.values()}
    except (zipfile.BadZipFile, OSError) as e:
        raise ConfigError(f"{file}: not a readable .npz file ({e}); save it with numpy.savez") from None


def _member(f, file: Path, name: str) -> np.ndarray:
    try:
        return f[name]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise _object_array(file, f"array {name!r}") from None
        raise


def npz_names(file: Path) -> list[str]:
    try:
        with np.load(file, allow_pickle=False) as f:
            return list(f.files)
    except (zipfile.BadZipFile, OSError) as e:
        raise ConfigError(f"{file}: not a readable .npz file ({e}); save it with numpy.savez") from None


# ----------------------------------------------------------------------------- checks
def row_chunks(n: int, row_bytes: int) -> Iterator[tuple[int, int]]:
    """[start, stop) row ranges of about CHUNK_BYTES each."""
    step = max(1, CHUNK_BYTES // max(row_bytes, 1))
    for start in range(0, n, step):
        yield start, min(start + step, n)


def check_numeric(x: np.ndarray, where: str) -> None:
    """Numbers only (bool, integer or float), finite: checked chunk by chunk, so a memory-mapped
    array is never read into memory as a whole."""
    if x.dtype.kind not in "biuf":
        raise ConfigError(f"{where} holds {x.dtype} values, not numbers; convert the features to numbers")
    if x.dtype.kind != "f":
        return
    row_bytes = x.dtype.itemsize * int(np.prod(x.shape[1:], dtype=np.int64))
    for start, stop in row_chunks(len(x), row_bytes):
        finite = np.isfinite(x[start:stop]).reshape(stop - start, -1).all(axis=1)
        if not finite.all():
            row = start + int(np.argmin(finite))
            raise ConfigError(f"{where} row {row} has a NaN or infinite value; remove or fill in missing values")


# ----------------------------------------------------------------------------- tables
def read_table(file: Path, fmt: str) -> tuple[list[str], list[list[str]]]:
    """The header and the data rows of a .csv/.tsv file, every row as long as the header."""
    delimiter = "\t" if fmt == "tsv" else ","
    with open(file, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=delimiter))
    if not rows or not rows[0]:
        raise ConfigError(f"{file}: empty; the first line names the columns, the others hold one example each")
    header, body = [c.strip() for c in rows[0]], rows[1:]
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ConfigError(f"{file} line {line}: {len(row)} values but the header names {len(header)} columns; "
                              f"give every row one value per column")
    if not body:
        raise ConfigError(f"{file}: a header but no rows; add one line per example")
    return header, body


def column_index(file: Path, header: list[str], name: str, key: str) -> int:
    if name not in header:
        raise ConfigError(f"{file} has no column {name!r} (columns: {', '.join(header)}); set {key} to one of them")
    return header.index(name)


def numbers(file: Path, header: list[str], body: list[list[str]], columns: list[int]) -> np.ndarray:
    """The cells of `columns` as float64 [rows, len(columns)], or the first bad cell named."""
    cells = np.array([[row[c] for c in columns] for row in body], dtype=str).reshape(len(body), len(columns))
    try:
        x = np.char.strip(cells).astype(np.float64)
    except ValueError:
        raise _bad_cell(file, header, body, columns) from None
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ConfigError(f"{file} line {row + 2}, column {header[columns[col]]!r}: {str(cells[row, col])!r} is not "
                          f"finite; remove or fill in missing values")
    return x


def _bad_cell(file: Path, header: list[str], body: list[list[str]], columns: list[int]) -> ConfigError:
    for line, row in enumerate(body, start=2):
        for c in columns:
            try:
                float(row[c])
            except ValueError:
                return ConfigError(f"{file} line {line}, column {header[c]!r}: {row[c]!r} is not a number; "
                                   f"features must be numbers (fill in or drop the column)")
    raise AssertionError("numpy rejected a cell that float() accepts")


def parse_cells(cells: list[str]) -> np.ndarray:
    """A CSV column as int64 if every cell is an integer, else float64 if every cell is a
    number, else the text itself."""
    stripped = np.char.strip(np.array(cells, dtype=str))
    for dtype in (np.int64, np.float64):
        try:
            return stripped.astype(dtype)
        except ValueError:
            continue
    return stripped


# ----------------------------------------------------------------------------- targets
def targets(y: np.ndarray, task: str, num_classes: int | None, where: str) -> tuple[np.ndarray, str, list[str] | None]:
    """(targets, task, class names) from labels y [N] as read. Task "auto": integer (or text)
    labels classify, float labels regress. Classification: int32 [N] in [0, K), text labels
    numbered in the sorted order of their names; regression: float32 [N, k]."""
    if y.dtype.kind not in "biufUS":
        raise ConfigError(f"{where} holds {y.dtype} values; labels must be numbers (or class names in a CSV)")
    if task == "auto":
        task = "regression" if y.dtype.kind == "f" else "classification"
    if task == "regression":
        if y.dtype.kind in "US":
            raise ConfigError(f"{where} holds text, which cannot be regressed on; set data.task=classification")
        check_numeric(y, where)
        return y.astype(np.float32).reshape(len(y), -1), task, None
    y = y.reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1:
        raise ConfigError(f"{where} has shape {list(y.shape)}; classification needs one class per row, shape [N]")
    names = None
    if y.dtype.kind in "US":
        names = sorted(set(y.tolist()))
        y = np.searchsorted(np.array(names), y)
    return _classes(y, num_classes, where), task, names


def _classes(y: np.ndarray, num_classes: int | None, where: str) -> np.ndarray:
    if y.dtype.kind == "f":
        fractional = ~np.isfinite(y) | (y != np.round(y))
        if fractional.any():
            row = int(np.argmax(fractional))
            raise ConfigError(f"{where} row {row} is {y[row]}, not an integer class; number the classes 0..K-1, "
                              f"or set data.task=regression for real-valued targets")
    k = num_classes if num_classes is not None else int(y.max()) + 1 if len(y) else 0
    outside = (y < 0) | (y >= k)
    if outside.any():
        row = int(np.argmax(outside))
        raise ConfigError(f"{where} row {row} is {y[row]}, outside [0, {k}); number the classes 0..K-1"
                          + (" or raise data.num_classes" if num_classes is not None else ""))
    return y.astype(np.int32)
