"""Character-level text for language modelling: any UTF-8 file by path, a folder (every file
in it, at any depth, hidden ones skipped) or a glob such as `books/*.txt`, or by default the
Python documentation text shipped with CPython (`pydoc_data.topics`, ~0.8 MB), no download.
Several files are one corpus: their texts joined in sorted path order, nothing in between.

The vocabulary is the sorted set of characters in the whole text (as nanoGPT's
shakespeare_char). The first (1 - val_fraction) of the characters train, the rest validate.

Batches: x = tokens[o : o+T], y = tokens[o+1 : o+T+1], both [B, T] int32. Training offsets
o are drawn uniformly from rng(seed, step); evaluation reads the validation text as
consecutive non-overlapping windows (train.eval_batches caps how many batches of them).
"""
from __future__ import annotations

import dataclasses
import glob
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import zoo.data.validate as validate
from zoo.data.base import Dataset, shard_rows
from zoo.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class TextConfig:
    path: str | None = None      # a UTF-8 text file, a folder or a glob of them; None: the pydoc corpus
    seq_len: int = 64
    val_fraction: float = 0.1


def text_files(path: str) -> list[Path]:
    """The files `path` names: itself, every file under a folder, or a glob's matches; sorted."""
    if not path.strip():
        raise ConfigError("data.path is empty (an unset shell variable?): give a UTF-8 text file, a folder of "
                          "them or a pattern such as books/*.txt; leave data.path out for the built-in corpus")
    file = Path(path).expanduser()
    if file.is_file():
        return [file]
    if file.is_dir():
        files = [p for p in file.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(file).parts)]
    else:
        files = [Path(p) for p in glob.glob(str(file), recursive=True) if Path(p).is_file()]
    if not files:
        raise ConfigError(f"data.path={path!r}: no such file, or no files in that folder or glob; "
                                f"give a UTF-8 text file, a folder of them or a pattern such as books/*.txt")
    return sorted(files)


def read_text(path: str | None) -> str:
    if path is None:
        from pydoc_data.topics import topics
        return "".join(topics[k] for k in sorted(topics))
    return "".join(validate.read_text(f) for f in text_files(path))


@dataclasses.dataclass
class TextDataset(Dataset):
    tokens: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))
    vocab: str = ""
    split: int = 0               # index of the first validation token
    seq_len: int = 64

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.vocab)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ConfigError(f"characters {''.join(unknown)!r} are not in the training vocabulary")
        return np.array([index[c] for c in text], np.int32)

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def train_batch(self, seed: int, step: int, batch_size: int, shard=(0, 1)) -> dict:
        rng = np.random.default_rng([seed, step])
        offsets = rng.integers(0, self.split - self.seq_len - 1, size=batch_size)
        return shard_rows(self._windows(offsets, np.ones(batch_size, np.float32)), shard)

    def eval_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        starts = np.arange(self.split, len(self.tokens) - self.seq_len - 1, self.seq_len)
        for i in range(0, len(starts), batch_size):
            chunk = starts[i:i + batch_size]
            mask = np.zeros(batch_size, np.float32)
            mask[:len(chunk)] = 1.0
            offsets = np.concatenate([chunk, np.full(batch_size - len(chunk), starts[0])])
            yield shard_rows(self._windows(offsets, mask), shard)

    def _windows(self, offsets: np.ndarray, mask: np.ndarray) -> dict:
        idx = offsets[:, None] + np.arange(self.seq_len + 1)[None, :]
        w = self.tokens[idx]
        return {"x": w[:, :-1], "y": w[:, 1:], "mask": mask}


def load(cfg: TextConfig) -> TextDataset:
    text = read_text(cfg.path)
    vocab = "".join(sorted(set(text)))
    split = int(len(text) * (1.0 - cfg.val_fraction))
    if min(split, len(text) - split) <= cfg.seq_len + 1:
        raise ConfigError(f"the text ({len(text)} characters) is too short for data.seq_len={cfg.seq_len}"
                          f" with val_fraction={cfg.val_fraction}")
    ds = TextDataset(task="language_model", model_defaults={"vocab_size": len(vocab), "num_outputs": len(vocab)},
                     preprocessing={"format": "text", "vocab": vocab}, vocab=vocab, split=split, seq_len=cfg.seq_len)
    ds.tokens = ds.encode(text)
    return ds
