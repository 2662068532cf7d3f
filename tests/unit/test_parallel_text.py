"""data.name=parallel_text: a user's sentence pairs as a TSV or two aligned files give exactly the
`translation` dataset's arrays, and every bad file is one line naming the file, the line and the fix."""
import numpy as np
import pytest

from zoo.data import parallel_text as pt
from zoo.data import translation as tr
from zoo.errors import ConfigError

PAIRS = [("one", "eins"), ("two", "zwei"), ("three", "drei"), ("four", "vier"), ("five", "fünf"),
         ("six", "sechs"), ("seven", "sieben"), ("eight", "acht"), ("nine", "neun"), ("ten", "zehn")]


def _tsv(tmp_path, text, name="pairs.tsv", encoding="utf-8"):
    file = tmp_path / name
    file.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return file


def _load(path, target_path=None, **options):
    return pt.load(pt.ParallelTextConfig(path=path and str(path), target_path=target_path and str(target_path),
                                         **options))


def _error(path, target_path=None, **options) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(path, target_path, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_tsv_of_numbers_gives_the_translation_datasets_arrays(tmp_path):
    """The same pairs, the same split (test_fraction, split_seed), the same vocabulary and batches."""
    file = _tsv(tmp_path, "".join(f"{tr.words(n, 'en')}\t{tr.words(n, 'de')}\n" for n in range(100)))
    mine, built_in = _load(file, split_seed=3), tr.load(tr.TranslationConfig(max_number=99, split_seed=3))
    assert mine.vocab == built_in.vocab and mine.model_defaults == built_in.model_defaults
    for split in ("train", "test"):
        for key, value in getattr(built_in, split).items():
            np.testing.assert_array_equal(getattr(mine, split)[key], value)
    batch, expected = mine.train_batch(0, 5, 8), built_in.train_batch(0, 5, 8)
    assert batch.keys() == expected.keys() and batch["x"].keys() == {"source", "target"}
    np.testing.assert_array_equal(batch["x"]["source"], expected["x"]["source"])
    assert mine.task == "translation" and mine.texts("test") == built_in.texts("test")


def test_aligned_files_read_as_the_tsv_does(tmp_path):
    tsv = _tsv(tmp_path, "".join(f" {s}\t{t} \r\n" for s, t in PAIRS) + "\n\n")   # CRLF, spaces, blank tail
    source = _tsv(tmp_path, "".join(f"{s}\n" for s, _ in PAIRS), "source.txt")
    target = _tsv(tmp_path, "".join(f"{t}\n" for _, t in PAIRS), "target.txt", "utf-16")
    for cfg in (pt.ParallelTextConfig(path=str(tsv)), pt.ParallelTextConfig(path=str(source), target_path=str(target))):
        _, sources, targets = pt.read(cfg)
        assert list(zip(sources, targets)) == PAIRS
    a, b = _load(tsv, test_fraction=0.2), _load(source, target, test_fraction=0.2)
    assert a.vocab == b.vocab and a.texts("test") == b.texts("test") and len(a.texts("test")[0]) == 2
    np.testing.assert_array_equal(a.train["y"], b.train["y"])
    assert len(a.texts("train")[0]) == 8 and set(zip(*a.texts("train"))) < set(PAIRS)
    assert "ü" not in a.vocab and "b" not in a.vocab       # fünf and sieben are held out at split_seed 0,
    assert (a.test["y"] == tr.UNK).sum() == 2              # their characters unseen in training read as UNK


def test_blank_lines_are_skipped_and_val_size_holds_out(tmp_path):
    file = _tsv(tmp_path, "\n".join(f"{s}\t{t}" + ("\n" if i == 4 else "") for i, (s, t) in enumerate(PAIRS)))
    d = _load(file, test_fraction=0.2, val_size=2)
    assert (len(d.train["y"]), len(d.val["y"]), len(d.test["y"])) == (6, 2, 2)


@pytest.mark.parametrize("text, expected", [
    ("one\teins\ntwo zwei\n", "pairs.tsv line 2: no tab; write source<TAB>target"),
    ("one\teins\ntwo\tzwei\tdrei\n", "pairs.tsv line 2: 2 tabs; write exactly one"),
    ("one\teins\n\tzwei\n", "pairs.tsv line 2 (source): an empty sentence"),
    ("one\teins\ntwo\t \n", "pairs.tsv line 2 (target): an empty sentence"),
    ("one\teins\n" + "x" * 9 + "\tneun\n", "pairs.tsv line 2 (source): 9 characters, more than data.max_length=8"),
    (b"one\teins\nf\xfcnf\tfive\n", "pairs.tsv line 2: not UTF-8 text (byte 0xfc, which Latin-1 reads as 'ü')"),
    (b"", "pairs.tsv: an empty file"),
    ("\n \n", "pairs.tsv: no sentence pairs"),
    ("one\teins\ntwo\tzwei\n", "2 sentence pairs with data.test_fraction=0.1 and data.val_size=0 leave 2 training "
                               "and 0 test pairs; give more pairs or raise data.test_fraction"),
])
def test_a_bad_tsv_is_one_line_naming_the_file_line_and_fix(tmp_path, text, expected):
    assert expected in _error(_tsv(tmp_path, text), max_length=8)


def test_bad_aligned_files_are_one_line_each(tmp_path):
    source = _tsv(tmp_path, "one\ntwo\nthree\n", "source.txt")
    target = _tsv(tmp_path, "eins\nzwei\n", "target.txt")
    assert "source.txt has 3 lines but" in _error(source, target) and "target.txt has 2" in _error(source, target)
    target.write_text("eins\n\ndrei\n")
    assert "target.txt line 2: an empty sentence" in _error(source, target)
    assert "nowhere.txt': no such file" in _error(source, tmp_path / "nowhere.txt").split("data.target_path=")[1]


def test_bad_paths_are_one_line_each(tmp_path):
    assert "data.path is required: give the path of a .tsv" in _error(None)
    assert "data.path is empty" in _error("")
    assert "is a folder; give the path of a .tsv" in _error(tmp_path)
    assert "pairs.tsv': no such file" in _error(tmp_path / "pairs.tsv")
