"""data.name=timeseries: the UCR/UEA archives' .ts and .tsv files, read without aeon. The shipped
files (zoo/data/files/ucr) are read always; aeon's others (unequal lengths, the .tsv twin of
a .ts) when aeon is installed (the test extra installs it)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from zoo.data import timeseries as ts
from zoo.errors import ConfigError

UCR = SHARED_DATA / "ucr"


def _aeon_data() -> Path:
    spec = importlib.util.find_spec("aeon")  # finds the package without importing it
    if spec is None:
        pytest.skip("aeon is not installed (pip install -e '.[test]')")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def _load(path, **options):
    return ts.load(ts.TimeseriesConfig(path=str(path), **options))


def test_gunpoint_gives_the_archive_split_znormalised_per_series():
    d = _load(UCR / "GunPoint" / "GunPoint_TRAIN.ts")
    assert d.train["x"].shape == (50, 150, 1) and d.test["x"].shape == (150, 150, 1)
    assert d.preprocessing["class_names"] == ["1", "2"] and d.model_defaults == {"num_outputs": 2}
    np.testing.assert_allclose(d.train["x"].mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(d.test["x"].std(1), 1, atol=1e-4)
    assert np.bincount(d.train["y"]).tolist() == [24, 26]


def test_a_folder_finds_the_pair_and_multivariate_channels_keep_the_declared_classes():
    d = _load(UCR / "BasicMotions", standardize="none")
    assert d.train["x"].shape == (40, 100, 6)
    assert d.preprocessing["class_names"] == ["Standing", "Running", "Walking", "Badminton"]
    first = (UCR / "BasicMotions" / "BasicMotions_TRAIN.ts").read_text().split("@data")[1].split()[0]
    channel0 = [float(v) for v in first.split(":")[0].split(",")]
    np.testing.assert_allclose(d.train["x"][0, :, 0], channel0, rtol=1e-6)  # as stored, channel by channel


def test_channel_standardisation_uses_the_training_split_and_is_stored():
    raw = _load(UCR / "BasicMotions", standardize="none")
    d = _load(UCR / "BasicMotions", standardize="channel")
    np.testing.assert_allclose(d.train["x"].mean((0, 1)), 0, atol=1e-5)
    np.testing.assert_allclose(d.train["x"].std((0, 1)), 1, atol=1e-4)
    stored = np.array(d.preprocessing["standardize"]["mean"]).reshape(100, 6)
    np.testing.assert_allclose(stored[0], raw.train["x"].mean((0, 1)), rtol=1e-5)  # per entry of a [100, 6] row
    mean, std = raw.train["x"].mean((0, 1)), raw.train["x"].std((0, 1))
    np.testing.assert_allclose(d.test["x"], (raw.test["x"] - mean) / std, atol=1e-4)  # not fitted on the test split


def test_unequal_lengths_are_padded_with_zeros_and_give_lengths():
    data = _aeon_data() / "JapaneseVowels"
    d = _load(data / "JapaneseVowels_TRAIN.ts", standardize="channel")
    batch = d.train_batch(0, 0, 8)
    x, lengths = batch["x"]["x"], batch["x"]["lengths"]
    assert x.shape[1:] == (29, 12) and lengths.min() < 29
    for row, n in zip(x, lengths):
        assert not row[n:].any() and np.abs(row[n - 1]).sum() > 0   # zeros after the last real step


def test_a_ucr_tsv_reads_as_its_ts_twin():
    data = _aeon_data() / "GunPoint"
    tsv = _load(data / "GunPoint_TRAIN.tsv", test_path=str(UCR / "GunPoint" / "GunPoint_TEST.ts"))
    ts_ = _load(UCR / "GunPoint" / "GunPoint_TRAIN.ts")
    np.testing.assert_allclose(tsv.train["x"], ts_.train["x"], atol=1e-6)
    np.testing.assert_array_equal(tsv.train["y"], ts_.train["y"])


def test_ucr_tsv_nan_padding_gives_lengths(tmp_path):
    (tmp_path / "S_TRAIN.tsv").write_text("1\t1\t2\t3\n2\t4\t5\tNaN\n1\t0\t1\t0\n")
    (tmp_path / "S_TEST.tsv").write_text("2\t1\t2\tNaN\n")
    d = _load(tmp_path / "S_TRAIN.tsv", standardize="none")
    assert d.train["x"].lengths.tolist() == [3, 2, 3]
    np.testing.assert_array_equal(d.train["x"].x[1, :, 0], [4, 5, 0])


def _ts(body, header="@problemName t\n@univariate true\n@classLabel true a b\n@data\n"):
    return header + body


BAD = {
    "no @data line": ("@problemName t\n", None),
    "before @data": ("1,2,3:a\n", None),
    "a missing value": (_ts("1,?,3:a\n4,5,6:b\n"), None),
    "NaN or infinite": (_ts("1,NaN,3:a\n4,5,6:b\n"), None),
    "same length": (_ts("1,2,3:1,2:a\n4,5,6:1,2,3:b\n"), None),
    "same channels": (_ts("1,2,3:a\n4,5,6:1,2,3:b\n"), None),
    "no class labels": (_ts("1,2,3\n", "@classLabel false\n@data\n"), None),
    "timeStamps": (_ts("(0,1),(1,2):a\n", "@timeStamps true\n@classLabel true a\n@data\n"), None),
    "not among the training": (_ts("1,2,3:a\n4,5,6:b\n"), _ts("1,2,3:c\n")),
}


@pytest.mark.parametrize("problem", BAD)
def test_bad_files_are_one_line_naming_the_file(tmp_path, problem):
    train, test = BAD[problem]
    (tmp_path / "t_TRAIN.ts").write_text(train)
    (tmp_path / "t_TEST.ts").write_text(test or _ts("1,2,3:a\n"))
    with pytest.raises(ConfigError, match=problem) as e:
        _load(tmp_path / "t_TRAIN.ts")
    assert "\n" not in str(e.value) and "t_T" in str(e.value)


def test_a_training_file_without_its_test_twin_says_how_to_give_one(tmp_path):
    (tmp_path / "mine.ts").write_text(_ts("1,2,3:a\n4,5,6:b\n"))
    with pytest.raises(ConfigError, match="data.test_path"):
        _load(tmp_path / "mine.ts")
    with pytest.raises(ConfigError, match="NaN or infinite value inside"):
        (tmp_path / "x_TRAIN.tsv").write_text("1\t1\tNaN\t3\n")
        (tmp_path / "x_TEST.tsv").write_text("1\t1\t2\t3\n")
        _load(tmp_path / "x_TRAIN.tsv")


def test_predict_inputs_go_through_the_training_preprocessing(tmp_path):
    d = _load(UCR / "GunPoint" / "GunPoint_TRAIN.ts")
    x = ts.read_inputs(UCR / "GunPoint" / "GunPoint_TEST.ts", d.preprocessing)
    np.testing.assert_array_equal(x, d.test["x"])
    (tmp_path / "long.ts").write_text("@classLabel false\n@data\n" + ",".join(["1"] * 151) + "\n")
    with pytest.raises(ConfigError, match="at most 150 steps"):
        ts.read_inputs(tmp_path / "long.ts", d.preprocessing)
