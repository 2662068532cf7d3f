"""Reading the user's array files: `.npz`, `.npy` (memory-mapped) and `.csv`/`.tsv` (a header
row, read in chunks). What a file holds is checked by zoo.data.validate, the one validation layer;
this module only reads. Table mistakes name the line of the file (the header is line 1).
"""
from __future__ import annotations

import csv
import dataclasses
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import zoo.data.validate as validate
from zoo.errors import ConfigError

FORMATS = {".npz": "npz", ".npy": "npy", ".csv": "csv", ".tsv": "tsv"}
CHUNK_CHARS = 1 << 22          # characters of a table parsed at a time (the cells of a chunk: ~30 MB)


def existing_file(path: str | None, key: str = "data.path", what: str = "an .npz, .npy, .csv or .tsv file") -> Path:
    return validate.existing(path, key, what)


def file_format(file: Path, key: str = "data.path") -> str:
    """The format the suffix names, checked against the file's first bytes."""
    fmt = FORMATS.get(file.suffix.lower())
    if fmt is None or not file.is_file():
        raise ConfigError(f"{key}={str(file)!r}: not a file ending in {', '.join(FORMATS)}; "
                          f"save the data in one of those formats")
    validate.sniff(file, fmt)
    return fmt


# ----------------------------------------------------------------------------- numpy files
def load_npy(file: Path) -> np.ndarray:
    """The array of an .npy file, memory-mapped (read from disk only where indexed); its header
    is checked against the file's size first."""
    with open(file, "rb") as f:
        validate.array_header(f, file.stat().st_size, file, "the array")
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise ConfigError(f"{file}: not a readable .npy file ({e}); save it with numpy.save") from None


def _zip_error(file: Path, e: Exception) -> ConfigError:
    return ConfigError(f"{file}: not a readable .npz file ({type(e).__name__}: {e}); save it with numpy.savez")


def load_npz(file: Path, names: dict[str, str]) -> dict[str, np.ndarray]:
    """Arrays of an .npz read once into memory (members of a zip cannot be memory-mapped):
    `names` maps the config key that names each array ("data.x_key") to its name in the file.
    Each member's header is checked against its stored size before numpy allocates."""
    present = npz_names(file)
    for key, name in names.items():
        if name not in present:
            raise ConfigError(f"{file} has no array {name!r} (it has {', '.join(present)}); "
                              f"set {key}=<name> to the one that holds it")
    try:
        with zipfile.ZipFile(file) as z:
            for name in set(names.values()):
                info = z.getinfo(f"{name}.npy")
                with z.open(info) as member:
                    validate.array_header(member, info.file_size, file, f"array {name!r}")
        with np.load(file, allow_pickle=False) as f:
            return {name: f[name] for name in names.values()}
    except ConfigError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError) as e:
        raise _zip_error(file, e) from None


def npz_names(file: Path) -> list[str]:
    try:
        with zipfile.ZipFile(file) as z:
            members = z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise _zip_error(file, e) from None
    return [m.removesuffix(".npy") for m in members if m.endswith(".npy")]


# ----------------------------------------------------------------------------- tables
@dataclasses.dataclass
class Table:
    """What a .csv/.tsv holds: features float32 [N, D] (the `columns`, in that order), and the
    label column as read (validate.Labels) when one was asked for."""
    x: np.ndarray
    columns: list[str]
    labels: validate.Labels | None


def _records(file: Path, fmt: str):
    """(line, cells) of every record but blank lines; the line is where the record ends."""
    with open(file, newline="", encoding=validate.text_encoding(file)) as f:
        reader = csv.reader(f, delimiter="\t" if fmt == "tsv" else ",")
        try:
            for row in reader:
                if row and (len(row) > 1 or row[0].strip()):
                    yield reader.line_num, row
        except UnicodeDecodeError as e:
            raise validate.not_utf8(file, e) from None
        except csv.Error as e:
            raise ConfigError(f"{file} line {reader.line_num}: {e} (an unclosed quote?); fix that line") from None


def read_header(file: Path, fmt: str) -> list[str]:
    """The column names of a table (its first record), checked."""
    first = next(_records(file, fmt), None)
    if first is None:
        raise ConfigError(f"{file}: empty; the first line names the columns, the others hold one example each")
    return validate.header(file, first[1])


def read_table(file: Path, fmt: str, features: Sequence[str] | None, label: str | None,
               features_key: str = "data.features", label_key: str = "data.label") -> Table:
    """The features (`features`, or every column but `label`) and the label column of a table,
    CHUNK_CHARS of text at a time: memory is the float32 features plus one chunk of cells."""
    records = _records(file, fmt)
    first = next(records, None)
    if first is None:
        raise ConfigError(f"{file}: empty; the first line names the columns, the others hold one example each")
    names = validate.header(file, first[1])
    label_at = validate.column(file, names, label, label_key) if label is not None else None
    wanted = list(features) if features else [n for n in names if n != label]
    columns = [validate.column(file, names, n, features_key) for n in wanted]
    labels = validate.Labels(file, label) if label is not None else None
    chunks, cells, label_cells, lines, size = [], [], [], [], 0
    for line, row in records:
        if len(row) != len(names):
            raise ConfigError(f"{file} line {line}: {len(row)} values but the header names {len(names)} columns; "
                              f"give every row one value per column")
        cells.extend(row[c] for c in columns)
        if labels is not None:
            label_cells.append(row[label_at])
        lines.append(line)
        size += sum(map(len, row))
        if size >= CHUNK_CHARS:
            chunks.append(_chunk(file, cells, label_cells, lines, wanted, labels))
            cells, label_cells, lines, size = [], [], [], 0
    if lines:
        chunks.append(_chunk(file, cells, label_cells, lines, wanted, labels))
    validate.rows(sum(len(c) for c in chunks), file)
    x = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    return Table(x, wanted, labels)


def _chunk(file, cells, label_cells, lines, names, labels) -> np.ndarray:
    if labels is not None:
        labels.add(label_cells, lines)
    return validate.numbers(file, cells, lines, names)
