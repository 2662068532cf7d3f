"""The one validation layer: every data file a dataset reads, every plugin's Dataset and every
input of `zoo predict` passes through these checks, so one mistake reads the same wherever it is
made. Each check raises a one-line ConfigError naming the file (and the key, line, row or
column) and the fix; nothing here wraps an unexpected exception.

    paths      existing(path, key)       None, '' (an unset shell variable) and missing files refused
               text_file(path, key)      the same, and a folder or an empty file refused
    formats    sniff(file, fmt)          the first bytes agree with the suffix (a CSV saved as .npz)
               text_encoding(file)       UTF-8 (a byte-order mark stripped) or UTF-16 with its BOM;
                                         anything else one line
               array_header(...)         an .npy header's shape and dtype, checked against the bytes
                                         behind it and the machine's memory before anything is allocated
    tables     header(file, row)         names stripped, duplicates refused
               labels: Labels            one kind per column (numbers or names, never a mix), no empty cell
    arrays     features(x, where, dtype) numbers, finite after the cast to the training dtype, integers
                                         that fit in int32
               lengths(...)              one label per row
               targets(...)              (targets, task, class names); classes 0..K-1, two or more,
                                         K sane against the rows
    models     against_model(dataset, model_cfg)   label ids below num_outputs
    datasets   dataset(ds, where)        a plugin's ArrayDataset checked like a file
    time       Timestamps(file)          per-point stamps: numbers or ISO date-times, one kind a file,
                                         finite, increasing within a series
    images     image_size(file, w, h)    pixels under MAX_IMAGE_PIXELS before decoding
    sentences  tsv_pair(file, line, text)   source<TAB>target, exactly one tab
               sentence(text, where, max)   not empty, at most data.max_length characters
               aligned(...)                 two files of sentences with one line each per pair
               pair_split(...)              a test pair and more training pairs than data.val_size
    outputs    output_file(output, input, overwrite)   predict never writes over its input or a folder

Rows are counted from 0 in arrays; table mistakes name the line of the file (the header is line 1).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ConfigError

MAX_IMAGE_PIXELS = 64 * 1024 * 1024     # one image; a larger one is a decompression bomb or a mistake
MIN_CLASS_LIMIT = 1024                  # label ids past max(rows, this) would build a head for no data
FLOAT32_MAX = float(np.finfo(np.float32).max)
INT32 = np.iinfo(np.int32)
CHUNK_BYTES = 1 << 23                   # rows scanned at a time (8 MB: small temporaries)


def memory_bytes() -> int:
    """This machine's physical memory: no single array zoo reads may claim more."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


# ----------------------------------------------------------------------------- paths
def existing(path: str | os.PathLike | None, key: str = "data.path", what: str = "an .npz, .npy, .csv or .tsv file") -> Path:
    """The file or folder `key` names; None, an empty or blank path, or a missing one: one line."""
    if path is None:
        raise ConfigError(f"{key} is required: give the path of {what}")
    if not str(path).strip():
        raise ConfigError(f"{key} is empty (an unset shell variable?): give the path of {what}")
    file = Path(path).expanduser()
    if not file.exists():
        raise ConfigError(f"{key}={str(path)!r}: no such file or folder; give the path of {what}")
    return file


def text_file(path: str | os.PathLike | None, key: str, what: str) -> Path:
    """The text file `key` names: existing (as `existing`), a file rather than a folder, not empty."""
    file = existing(path, key, what)
    if not file.is_file():
        raise ConfigError(f"{key}={str(path)!r} is a folder; give the path of {what}")
    sniff(file, "text")
    return file


def rows(n: int, file: Any, what: str = "rows") -> None:
    if n == 0:
        raise ConfigError(f"{file}: no {what}; give one or more examples")


# ----------------------------------------------------------------------------- formats
NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", (b"PK\x03\x04", b"PK\x05\x06")


def _looks_like(head: bytes) -> str:
    if head.startswith(NPY_MAGIC):
        return "an .npy array"
    if head.startswith(ZIP_MAGIC):
        return "a zip archive (.npz)"
    try:
        head.decode("utf-8")
        return "text (a CSV?)"
    except UnicodeDecodeError:
        return "other binary data"


def sniff(file: Path, fmt: str) -> None:
    """The file's first bytes agree with its suffix: an empty file, a CSV saved as .npz or an
    .npz saved as .npy is one line here rather than numpy's error."""
    with open(file, "rb") as f:
        head = f.read(8)
    if not head:
        raise ConfigError(f"{file}: an empty file (0 bytes); save the data again")
    expected = {"npy": head.startswith(NPY_MAGIC), "npz": head.startswith(ZIP_MAGIC)}.get(fmt)
    if expected is None:
        return
    if not expected:
        save = "numpy.save" if fmt == "npy" else "numpy.savez"
        raise ConfigError(f"{file}: not an .{fmt} file (it holds {_looks_like(head)}); save it with {save}, "
                          f"or give it the suffix of what it is")


def array_header(stream, stored_bytes: int, file: Any, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the .npy header at the start of `stream`, a file or zip member of
    `stored_bytes` bytes (header included); refused before anything is allocated when the header asks for more bytes than
    are stored (a truncated file) or than the machine has, or for Python objects."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        shape, _fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(stream)
    except ValueError as e:
        raise ConfigError(f"{file}: {name} has no readable .npy header ({e}); save it with numpy") from None
    if dtype.hasobject:
        raise ConfigError(f"{file}: {name} holds Python objects (ragged rows or mixed types), which zoo does not "
                          f"unpickle; save rows of equal length as one numeric array")
    claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if claimed > memory_bytes():
        raise ConfigError(f"{file}: the header of {name} claims shape {list(shape)}, {claimed / 2**30:.3g} GiB, more than "
                          f"this machine's memory; the file is damaged or not what its header says")
    stored = stored_bytes - stream.tell()
    if claimed > stored:
        raise ConfigError(f"{file}: the header of {name} claims shape {list(shape)} ({claimed} bytes) but only "
                          f"{stored} are stored: the file is truncated; save it again")
    return shape, dtype


def text_encoding(file: Path) -> str:
    """The codec to read a text file with: UTF-8, without the byte-order mark Excel's "CSV UTF-8"
    writes, or UTF-16/32 when the file starts with their byte-order mark ("Unicode text")."""
    with open(file, "rb") as f:
        head = f.read(4)
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    return "utf-8-sig"


def not_utf8(file: Path, error: UnicodeDecodeError) -> ConfigError:
    """One line naming the first line of `file` that is not in its encoding, and the byte."""
    encoding = text_encoding(file)
    line, byte = _first_undecodable(file, encoding)
    guess = f", which Latin-1 reads as {byte.decode('cp1252')!r}" if byte and byte[0] >= 0xA0 else ""
    name = "UTF-8" if encoding == "utf-8-sig" else encoding.upper()
    return ConfigError(f"{file} line {line}: not {name} text (byte 0x{byte.hex()}{guess}); save it as UTF-8 "
                       f"(Excel: CSV UTF-8) or UTF-16 with a byte-order mark")


def _first_undecodable(file: Path, encoding: str) -> tuple[int, bytes]:
    """(line, byte) of the first byte of `file` that `encoding` cannot decode, read 1 MB at a time."""
    import codecs
    decoder, line = codecs.getincrementaldecoder(encoding)(), 1
    with open(file, "rb") as f:
        for chunk in [*iter(lambda: f.read(1 << 20), b""), None]:
            try:
                line += decoder.decode(chunk or b"", final=chunk is None).count("\n")
            except UnicodeDecodeError as e:
                return line + e.object[:e.start].count(b"\n"), e.object[e.start:e.start + 1]
    return line, b""


def read_text(file: Path) -> str:
    """A whole text file in the encoding text_encoding finds; a byte-order mark removed."""
    try:
        return file.read_text(encoding=text_encoding(file))
    except UnicodeDecodeError as e:
        raise not_utf8(file, e) from None


# ----------------------------------------------------------------------------- tables
def header(file: Path, names: list[str]) -> list[str]:
    """Column names stripped of spaces and a stray byte-order mark; a name twice is refused."""
    names = [n.strip().lstrip("\ufeff").strip() for n in names]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(f"{file}: the header names column {name!r} twice (columns {seen[name] + 1} and "
                              f"{i + 1}); give every column its own name")
        seen[name] = i
    return names


def column(file: Path, names: list[str], name: str, key: str) -> int:
    if name not in names:
        raise ConfigError(f"{file} has no column {name!r} (columns: {', '.join(names)}); set {key} to one of them")
    return names.index(name)


def numbers(file: Path, cells: list[str], lines: Sequence[int], names: Sequence[str]) -> np.ndarray:
    """Cells (row-major, len(names) per line) as float32 [rows, len(names)]: every cell a number,
    finite and within float32's range, or the first bad one named by line and column."""
    width = len(names)
    try:
        x = np.fromiter(map(float, cells), np.float64, len(cells))
    except ValueError:
        for i, cell in enumerate(cells):
            try:
                float(cell)
            except ValueError:
                raise ConfigError(f"{file} line {lines[i // width]}, column {names[i % width]!r}: {cell!r} is not "
                                  f"a number; features must be numbers (fill in the cell or leave the column "
                                  f"out with data.features)") from None
        raise
    bad = ~(np.abs(x) <= FLOAT32_MAX)
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(f"{file} line {lines[i // width]}, column {names[i % width]!r}: {cells[i].strip()!r} is not "
                          f"a finite float32 number; remove or fill in missing values, rescale huge ones")
    return x.astype(np.float32).reshape(-1, width)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


class Labels:
    """A label column read chunk by chunk: integers, floats, or names (text), never a mix and
    never an empty cell. Names are kept as ids into the names seen so far, so a long column of
    short names costs 4 bytes a row; `result()` numbers them in sorted order of the names."""

    def __init__(self, file: Path, name: str):
        self.file, self.name = file, name
        self.chunks: list[np.ndarray] = []
        self.names: dict[str, int] = {}
        self.kind: str | None = None            # "number" or "name"
        self.first: tuple[int, str] | None = None  # (line, cell) of the first label, for the message

    def _where(self, line: int) -> str:
        return f"{self.file} line {line}, column {self.name!r}"

    def add(self, cells: list[str], lines: Sequence[int]) -> None:
        cells = [c.strip() for c in cells]
        for cell, line in zip(cells, lines):
            if not cell:
                raise ConfigError(f"{self._where(line)}: the label is empty; fill it in or remove the row")
        numeric = [_is_number(c) for c in cells]
        kind = "number" if all(numeric) else "name" if not any(numeric) else None
        if self.first is None and cells:
            self.first = (lines[0], cells[0])
        if kind is None or (self.kind is not None and kind != self.kind):
            self._mixed(cells, lines, numeric)
        self.kind = kind
        if kind == "number":
            ints = all(_is_int(c) for c in cells)
            self.chunks.append(np.array([int(c) if ints else float(c) for c in cells],
                                        np.int64 if ints and all(abs(int(c)) < 2**62 for c in cells) else np.float64))
        else:
            ids = [self.names.setdefault(c, len(self.names)) for c in cells]
            if len(self.names) > MIN_CLASS_LIMIT and len(self.names) > sum(len(c) for c in self.chunks) + len(ids):
                raise ConfigError(f"{self._where(lines[-1])}: {len(self.names)} different labels for fewer rows; "
                                  f"the column holds no classes (set data.label to the label column)")
            self.chunks.append(np.array(ids, np.int64))

    def _mixed(self, cells: list[str], lines: Sequence[int], numeric: list[bool]) -> None:
        """One line naming the first cell whose kind differs from the column's (numbers or names)."""
        column_kind = self.kind or ("number" if sum(numeric) * 2 >= len(numeric) else "name")
        for cell, line, is_number in zip(cells, lines, numeric):
            if is_number != (column_kind == "number"):
                other = "a number" if is_number else "text"
                raise ConfigError(f"{self._where(line)}: the label {cell!r} is {other}, but the other labels are "
                                  f"{'numbers' if column_kind == 'number' else 'names'}; fix or remove that row "
                                  f"(a missing label cannot be a class)")
        raise AssertionError("a mixed chunk without an odd cell")

    def result(self) -> tuple[np.ndarray, list[str] | None]:
        """(labels [N], class names or None): ints as int64, floats as float64, names as the index
        of each name in the sorted names."""
        if not self.chunks:
            return np.zeros(0, np.int64), None
        dtype = np.result_type(*self.chunks)
        y = np.concatenate([c.astype(dtype) for c in self.chunks])
        if self.kind != "name":
            return y, None
        names = sorted(self.names)
        order = np.empty(len(names), np.int64)
        order[[self.names[n] for n in names]] = np.arange(len(names))
        return order[y], names


def _is_int(cell: str) -> bool:
    try:
        int(cell)
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------- arrays
def row_chunks(n: int, row_bytes: int):
    """[start, stop) row ranges of about CHUNK_BYTES each."""
    step = max(1, CHUNK_BYTES // max(row_bytes, 1))
    for start in range(0, n, step):
        yield start, min(start + step, n)


def features(x: np.ndarray, where: str, dtype: str = "float32") -> None:
    """Numbers only, representable in the training `dtype`: floats finite after the cast (1e300
    in float64 is inf in float32), integers within int32 when the inputs stay integers. Checked
    chunk by chunk, so a memory-mapped array is never read whole."""
    if x.dtype.kind not in "biuf":
        raise ConfigError(f"{where} holds {x.dtype} values, not numbers; convert the features to numbers")
    if x.dtype.kind == "b" or (x.dtype.kind in "iu" and x.dtype.itemsize < 4):
        return
    row_bytes = x.dtype.itemsize * int(np.prod(x.shape[1:], dtype=np.int64))
    for start, stop in row_chunks(len(x), row_bytes):
        chunk = np.asarray(x[start:stop]).reshape(stop - start, -1)
        if x.dtype.kind == "f" or dtype == "float32":
            bad = ~(np.abs(chunk.astype(np.float64)) <= FLOAT32_MAX)
            problem = "a NaN, infinite or out-of-float32-range value; remove or fill in missing values"
        else:
            bad = (chunk < INT32.min) | (chunk > INT32.max)
            problem = (f"an integer outside int32 ({INT32.min}..{INT32.max}); token ids must fit, or set "
                       f"data.dtype=float32")
        bad_rows = bad.any(axis=1)
        if bad_rows.any():
            raise ConfigError(f"{where} row {start + int(np.argmax(bad_rows))} has {problem}")


def lengths(pairs: Sequence[tuple[str, Any, str, Any]], where: Any) -> None:
    """One label per input row, for each (input name, inputs, label name, labels)."""
    for xn, x, yn, y in pairs:
        nx, ny = (len(a) if np.ndim(a) else 0 for a in (x, y))
        if np.ndim(x) == 0 or np.ndim(y) == 0 or nx != ny:
            raise ConfigError(f"{where}: the inputs ({xn}) have {nx} rows but the labels ({yn}) have {ny}; "
                              f"give one label per row")


def targets(y: np.ndarray, task: str, num_classes: int | None, where: str,
            names: list[str] | None = None) -> tuple[np.ndarray, str, list[str] | None]:
    """(targets, task, class names) from labels y [N] as read (`names`: the class names a table's
    text labels were numbered by). Task "auto": integer labels (or names) classify, float labels
    regress. Classification: int32 [N] in [0, K); regression: float32 [N, k], finite in float32."""
    if y.dtype.kind in "US" and names is None and y.ndim == 1:
        y, names = _named_classes(y, where)
    if y.dtype.kind not in "biuf":
        raise ConfigError(f"{where} holds {y.dtype} values; labels must be numbers or class names")
    if task == "auto":
        task = "regression" if y.dtype.kind == "f" and names is None else "classification"
    if task == "regression":
        if names is not None:
            raise ConfigError(f"{where} holds names, which cannot be regressed on; set data.task=classification")
        features(y.reshape(len(y), -1), where, "float32")
        return y.astype(np.float32).reshape(len(y), -1), task, None
    y = y.reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1:
        raise ConfigError(f"{where} has shape {list(y.shape)}; classification needs one class per row, shape [N]")
    return classes(y, num_classes, where, names), task, names


def _named_classes(y: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """Text labels of an array file as ids into their sorted names; an empty name is refused."""
    empty = np.char.strip(y.astype(str)) == ""
    if empty.any():
        raise ConfigError(f"{where} row {int(np.argmax(empty))} is an empty label; fill it in or remove the row")
    names = sorted(set(y.astype(str).tolist()))
    return np.searchsorted(np.array(names), y.astype(str)).astype(np.int64), names


def classes(y: np.ndarray, num_classes: int | None, where: str, names: list[str] | None = None) -> np.ndarray:
    """Class ids int32 [N] from labels [N]: integers in [0, K), K = num_classes or the largest + 1,
    two or more distinct classes, and K sane against the rows (ids up to 10^9 are not classes)."""
    if y.dtype.kind == "f":
        fractional = ~np.isfinite(y) | (y != np.round(y))
        if fractional.any():
            row = int(np.argmax(fractional))
            raise ConfigError(f"{where} row {row} is {y[row]}, not an integer class; number the classes 0..K-1, "
                              f"or set data.task=regression for real-valued targets")
    rows(len(y), where, "labels")
    k = num_classes if num_classes is not None else int(y.max()) + 1
    outside = (y < 0) | (y >= k)
    if outside.any():
        row = int(np.argmax(outside))
        raise ConfigError(f"{where} row {row} is {y[row]}, outside [0, {k}); number the classes 0..K-1"
                          + (" or raise data.num_classes" if num_classes is not None else ""))
    limit = max(len(y), MIN_CLASS_LIMIT)
    if k > limit:
        raise ConfigError(f"{where}: class ids up to {k - 1} would make a {k}-way classifier for {len(y)} rows; "
                          f"number the classes 0..K-1 (or set data.task=regression for numeric targets)")
    present = np.unique(y)
    if len(present) < 2:
        shown = names[int(present[0])] if names else int(present[0])
        raise ConfigError(f"{where}: every label is {shown!r}, one class; a classifier needs two or more "
                          f"(is data.label the right column?)")
    return y.astype(np.int32)


# ----------------------------------------------------------------------------- datasets and models
def dataset(ds: Any, where: str) -> None:
    """A Dataset built by code (a plugin) checked as a file would be: for an ArrayDataset, each
    split's inputs and labels of one length, finite numbers, class ids in [0, num_outputs)."""
    from zoo.data.base import ArrayDataset
    if not isinstance(ds, ArrayDataset):
        return
    for split in ("train", "test", "val"):
        arrays = getattr(ds, split)
        if split != "val" and ("x" not in arrays or "y" not in arrays):
            raise ConfigError(f"{where}: the dataset's {split} split has no 'x' and 'y' arrays; give both")
        if not arrays:
            continue
        x, y = arrays["x"], np.asarray(arrays["y"])
        lengths([(f"{split} x", x, f"{split} y", y)], where)
        if isinstance(x, np.ndarray):
            features(x, f"{where}: {split} x")
        if ds.task == "classification":
            check_labels(y, ds.model_defaults.get("num_outputs"), f"{where}: {split} y")
        elif y.dtype.kind in "biuf":
            features(y.reshape(len(y), -1), f"{where}: {split} y")


def check_labels(y: np.ndarray, num_outputs: int | None, where: str) -> None:
    """Classification labels: integer ids in [0, num_outputs)."""
    if y.dtype.kind not in "iu":
        raise ConfigError(f"{where} holds {y.dtype} labels; classification needs integer class ids")
    if num_outputs is not None and len(y):
        outside = (y < 0) | (y >= num_outputs)
        if outside.any():
            row = int(np.argmax(outside))
            raise ConfigError(f"{where} row {row} is class {int(y[row])}, but the model has {num_outputs} outputs "
                              f"(model.num_outputs); give labels 0..{num_outputs - 1} or more outputs")


def against_model(ds: Any, model_cfg: Any, data_name: str) -> None:
    """The data fits the model before anything compiles: a classifier's label ids are below its
    num_outputs (model.num_outputs set by hand, or a plugin's model_defaults)."""
    from zoo.data.base import ArrayDataset
    num_outputs = getattr(model_cfg, "num_outputs", None)
    if ds.task != "classification" or num_outputs is None or not isinstance(ds, ArrayDataset):
        return
    for split in ("train", "test", "val"):
        y = getattr(ds, split).get("y")
        if y is not None:
            check_labels(np.asarray(y), num_outputs, f"data {data_name!r}: {split} labels")


# ----------------------------------------------------------------------------- time stamps
class Timestamps:
    """The per-point time stamps of one file: finite numbers, or ISO 8601 date-times (as seconds
    since the epoch; one without a zone is read as UTC), never a mix in one file; each series'
    strictly increasing. `kind` is "number" or "date-time" once a stamp has been read."""

    def __init__(self, file: Path):
        self.file, self.kind = file, None
        self.first: tuple[int, str] | None = None   # (line, stamp) that fixed the kind, for the message

    def series(self, stamps: Sequence[str], line: int) -> np.ndarray:
        """One series' stamps (float64 [T]) read from `line` of the file."""
        times = np.array([self._one(s.strip(), line) for s in stamps], np.float64)
        back = np.flatnonzero(np.diff(times) <= 0)
        if len(back):
            i = int(back[0])
            raise ConfigError(f"{self.file} line {line}: time stamp {stamps[i + 1].strip()!r} does not come after "
                              f"{stamps[i].strip()!r}; give each series' points in increasing time, once each")
        return times

    def _one(self, stamp: str, line: int) -> float:
        kind, value = ("number", float(stamp)) if _is_number(stamp) else ("date-time", _seconds(stamp))
        if value is None:
            raise ConfigError(f"{self.file} line {line}: time stamp {stamp!r} is neither a number nor an ISO 8601 "
                              f"date-time (2007-01-01 00:02:00); write every stamp as one of them")
        if not np.isfinite(value):
            raise ConfigError(f"{self.file} line {line}: time stamp {stamp!r} is not finite; give every point a "
                              f"finite time")
        if self.kind is None:
            self.kind, self.first = kind, (line, stamp)
        elif kind != self.kind:
            raise ConfigError(f"{self.file} line {line}: time stamp {stamp!r} is a {kind}, but line {self.first[0]}'s "
                              f"{self.first[1]!r} is a {self.kind}; write every stamp of the file the same way")
        return value


def _seconds(stamp: str) -> float | None:
    try:
        t = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


# ----------------------------------------------------------------------------- images
def image_size(file: Any, width: int, height: int) -> None:
    """Refused before decoding: an image of more than MAX_IMAGE_PIXELS (a decompression bomb)."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ConfigError(f"{file}: {width}x{height} pixels, more than zoo decodes ({MAX_IMAGE_PIXELS} pixels); "
                          f"shrink the image or leave it out")


# ----------------------------------------------------------------------------- sentences
def tsv_pair(file: Path, line: int, text: str) -> tuple[str, str]:
    """(source, target) of one line source<TAB>target, spaces around each side removed."""
    cells = text.split("\t")
    if len(cells) == 1:
        raise ConfigError(f"{file} line {line}: no tab; write source<TAB>target on every line (or give the "
                          f"target sentences in their own file, line for line, with data.target_path)")
    if len(cells) > 2:
        raise ConfigError(f"{file} line {line}: {len(cells) - 1} tabs; write exactly one, between the source and "
                          f"its target (a tab inside a sentence must become a space)")
    return cells[0].strip(), cells[1].strip()


def sentence(text: str, where: str, max_length: int) -> None:
    """One side of a sentence pair: not empty, at most `max_length` characters."""
    if not text:
        raise ConfigError(f"{where}: an empty sentence; give every source its translation, or remove the pair")
    if len(text) > max_length:
        raise ConfigError(f"{where}: {len(text)} characters, more than data.max_length={max_length}; split or "
                          f"shorten the sentence, or raise data.max_length")


def aligned(source: Path, source_lines: int, target: Path, target_lines: int) -> None:
    """Aligned files pair line i with line i: both must have as many lines."""
    if source_lines != target_lines:
        raise ConfigError(f"{source} has {source_lines} lines but {target} has {target_lines}; aligned files pair "
                          f"line i of one with line i of the other, so give both one line per pair")


def pair_split(file: Path, pairs: int, train: int, test: int, fraction: float, val_size: int) -> None:
    """Enough sentence pairs for the held-out split: one or more test pairs, more training pairs
    than data.val_size takes for validation."""
    rows(pairs, file, "sentence pairs")
    if test and train > val_size:
        return
    fix = "raise data.test_fraction" if not test else "lower data.test_fraction" if not train else "lower data.val_size"
    raise ConfigError(f"{file}: {pairs} sentence pairs with data.test_fraction={fraction} and data.val_size={val_size} "
                      f"leave {train} training and {test} test pairs; give more pairs or {fix}")


# ----------------------------------------------------------------------------- outputs
def output_file(output: str, inputs: str, suffixes: Sequence[str], overwrite: bool) -> Path:
    """Where predictions may go: a file with one of `suffixes` in an existing folder, never the
    input itself (also through another name or link), never a folder, and an existing file only
    with --overwrite."""
    if not str(output).strip():
        raise ConfigError("--output is empty (an unset shell variable?): give the file predictions go to")
    out = Path(output).expanduser()
    if out.is_dir():
        raise ConfigError(f"--output {output}: a folder; give a file name in it, e.g. {out / 'predictions.csv'}")
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"--output {output}: write predictions to a {' or '.join(suffixes)} file")
    if not out.parent.is_dir():
        raise ConfigError(f"--output {output}: the folder {out.parent} does not exist")
    source = Path(inputs).expanduser()
    if out.exists() and source.exists() and os.path.samefile(out, source):
        raise ConfigError(f"--output {output} is the input file: predictions never replace their inputs; "
                          f"give another file")
    if out.exists() and not overwrite:
        raise ConfigError(f"--output {output} exists; add --overwrite to replace it, or give another file")
    return out
