"""`parallel_text`: your own sentence pairs, for the sequence-to-sequence models (seq2seq,
gru_seq2seq, lstm_seq2seq) and every config that trains them on the `translation` dataset.

    data.path=pairs.tsv                                 one pair a line: source<TAB>target
    data.path=source.txt data.target_path=target.txt    two aligned files, one sentence a line:
                                                        line i of one translates line i of the other

Files are UTF-8 (a byte-order mark stripped) or UTF-16 with its mark, read and checked by
zoo.data.validate: every mistake (a missing or empty file, another encoding, a line without a tab
or with more than one, an empty side, aligned files of unequal line counts, a sentence longer than
data.max_length, too few pairs for the split) is one line naming the file, the line and the fix.
Spaces around each sentence are removed; a line blank on both sides is skipped. No header line.

round(data.test_fraction * N) of the N pairs are held out at random from data.split_seed;
data.val_size moves the last training pairs to a validation split (train.select).

Tokens are characters, ids and batches exactly those of the `translation` dataset
(zoo.data.translation, whose docstring has the axis legend): one vocabulary for both sides, built
from the training pairs, so a character that only held-out pairs (or the lines `zoo predict`
translates) hold reads as UNK, which the model has never been trained to produce.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import zoo.data.translation as translation
import zoo.data.validate as validate
from zoo.data.base import held_out

TSV = "a .tsv of sentence pairs, source<TAB>target on each line (or the source sentences, with data.target_path)"
TARGETS = "the target sentences, one a line, line for line with data.path"


@dataclasses.dataclass(frozen=True)
class ParallelTextConfig:
    path: str | None = None          # source<TAB>target lines; with target_path: the source sentences
    target_path: str | None = None   # the target sentences, line for line with data.path; None: path is a TSV
    max_length: int = 256            # characters of one sentence, either side; a longer one is refused
    test_fraction: float = 0.1       # of the pairs, held out
    split_seed: int = 0
    val_size: int = 0                # the last N training pairs validate (train.select)


def lines(file: Path) -> list[str]:
    """The file's lines (split at newlines only, so line numbers are an editor's), trailing blank
    lines dropped."""
    text = validate.read_text(file).split("\n")
    out = [line.removesuffix("\r") for line in text]
    while out and not out[-1].strip():
        out.pop()
    return out


def tsv_pairs(file: Path, max_length: int) -> tuple[list[str], list[str]]:
    """(sources, targets) of a TSV, one pair a line."""
    sources, targets = [], []
    for number, text in enumerate(lines(file), 1):
        if not text.strip():
            continue
        source, target = validate.tsv_pair(file, number, text)
        validate.sentence(source, f"{file} line {number} (source)", max_length)
        validate.sentence(target, f"{file} line {number} (target)", max_length)
        sources.append(source)
        targets.append(target)
    return sources, targets


def aligned_pairs(source_file: Path, target_file: Path, max_length: int) -> tuple[list[str], list[str]]:
    """(sources, targets) of two files, line i of one paired with line i of the other."""
    source_lines, target_lines = lines(source_file), lines(target_file)
    validate.aligned(source_file, len(source_lines), target_file, len(target_lines))
    sources, targets = [], []
    for number, (source, target) in enumerate(zip(source_lines, target_lines), 1):
        source, target = source.strip(), target.strip()
        if not source and not target:
            continue
        validate.sentence(source, f"{source_file} line {number}", max_length)
        validate.sentence(target, f"{target_file} line {number}", max_length)
        sources.append(source)
        targets.append(target)
    return sources, targets


def read(cfg: ParallelTextConfig) -> tuple[Path, list[str], list[str]]:
    """(the file data.path names, sources, targets)."""
    if cfg.target_path is None:
        file = validate.text_file(cfg.path, "data.path", TSV)
        return file, *tsv_pairs(file, cfg.max_length)
    source = validate.text_file(cfg.path, "data.path", "the source sentences, one a line")
    target = validate.text_file(cfg.target_path, "data.target_path", TARGETS)
    return source, *aligned_pairs(source, target, cfg.max_length)


def load(cfg: ParallelTextConfig) -> translation.TranslationDataset:
    file, sources, targets = read(cfg)
    train, test = held_out(len(sources), cfg.test_fraction, cfg.split_seed)
    validate.pair_split(file, len(sources), len(train), len(test), cfg.test_fraction, cfg.val_size)
    return translation.dataset(sources, targets, train, test, val_size=cfg.val_size,
                               preprocessing={"format": "parallel_text", "pairs": len(sources),
                                              "sha256": fingerprint(sources, targets)})


def fingerprint(sources: list[str], targets: list[str]) -> str:
    """A hash of the pairs as read: stored in the run, so evaluating after the file changed is refused."""
    return hashlib.sha256("\n".join(f"{s}\t{t}" for s, t in zip(sources, targets)).encode()).hexdigest()
