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


# ----------------------------------------------------------------------------- @timeStamps true
STAMPED = "@problemName t\n@timeStamps true\n@classLabel true a b\n@data\n"


def test_numeric_stamps_become_offsets_from_each_series_first_point(tmp_path):
    (tmp_path / "n.ts").write_text(STAMPED + "(10,1.0),(10.5,2.0),(12,3.0):(10,-1),(10.5,-2),(12,-3):a\n"
                                             "(3,4.0), (7,5.0):(3,0),(7,0):b\n")
    s = ts.read_ts(tmp_path / "n.ts")
    assert s.time_kind == "number" and s.labels == ["a", "b"]
    np.testing.assert_array_equal(s.times[0], [0, 0.5, 2]) and np.testing.assert_array_equal(s.times[1], [0, 4])
    np.testing.assert_array_equal(s.values[0], [[1, -1], [2, -2], [3, -3]])


def test_aeons_bundled_stamped_file_reads_date_times_as_seconds():
    s = ts.read_ts(_aeon_data() / "UnitTest" / "UnitTestTimeStamps_TRAIN.ts")   # its header has % comments
    assert s.time_kind == "date-time" and len(s.values) == len(s.labels) > 1
    np.testing.assert_array_equal(s.times[0], [0, 60, 120, 180])
    np.testing.assert_allclose(s.values[0][:, 0], [241.97, 241.75, 241.64, 241.71])


def test_iso_stamps_keep_their_zone_and_gaps_reach_a_classifier_in_data_time_unit(tmp_path):
    rows = ["(2024-03-01T00:00:00+01:00,1),(2024-03-01T00:00:00Z,2),(2024-03-03T01:00:00Z,3):a",
            "(2024-03-01 00:00,4),(2024-03-02 00:00,5):b"]
    (tmp_path / "d_TRAIN.ts").write_text(STAMPED + "\n".join(rows) + "\n")
    (tmp_path / "d_TEST.ts").write_text(STAMPED + rows[1] + "\n")
    d = _load(tmp_path / "d_TRAIN.ts", standardize="none", time_unit="hours")
    x = d.train["x"].x                                                   # [N, T, values + gap]
    assert x.shape == (2, 3, 2) and d.preprocessing["timestamps"] == "date-time"
    np.testing.assert_allclose(x[0, :, 1], [0, 1, 49]) and np.testing.assert_allclose(x[1, :2, 1], [0, 24])
    np.testing.assert_allclose(ts.read_inputs(tmp_path / "d_TEST.ts", d.preprocessing)["x"][0, :2, 1], [0, 24])


def test_irregular_task_gives_irregular_periodics_batch(tmp_path):
    from zoo.data import irregular
    body = "".join(f"{','.join(f'({t},{t * k})' for t in range(2, 2 + n))}:a\n" for k, n in [(1, 8), (2, 6), (3, 8)])
    (tmp_path / "p_TRAIN.ts").write_text(STAMPED + body)
    (tmp_path / "p_TEST.ts").write_text(STAMPED + body)
    d = _load(tmp_path / "p_TRAIN.ts", task="irregular", standardize="none", context_fraction=0.5)
    generated = irregular.load(irregular.IrregularConfig(num_train=3, num_test=3, num_points=8))
    b, g = d.train_batch(0, 0, 3), generated.train_batch(0, 0, 3)
    assert d.task == "irregular" and d.model_defaults == {"num_outputs": 1}
    assert {k: sorted(v) for k, v in b.items() if k != "mask"} == {k: sorted(v) for k, v in g.items() if k != "mask"}
    assert all(b["x"][k].shape == g["x"][k].shape for k in g["x"])
    t, y, seen = d.train["t"], d.train["values"][..., 0], d.train["observed"]
    np.testing.assert_array_equal(t[1], [0, 1, 2, 3, 4, 5, 5, 5])        # 6 points, the last repeated
    np.testing.assert_array_equal(y[1], [4, 6, 8, 10, 12, 14, 14, 14])
    sets = seen + d.train["interp"] + d.train["extrap"]
    np.testing.assert_array_equal(sets[1], [1, 1, 1, 1, 1, 1, 0, 0])     # each real point in one set, padding in none
    assert (seen[:, 0] == 1).all() and not (seen * (t >= 0.5 * t[:, -1:])).any()   # context: the first half
    np.testing.assert_array_equal(d.train["extrap"][0], t[0] >= 3.5)



def test_the_irregular_loss_never_counts_a_shorter_series_padding(tmp_path):
    """A series of 6 points among series of 8 repeats its last point twice, in none of the three
    sets: a prediction wrong only there leaves the loss and both MSEs as they were."""
    from zoo import tasks
    body = "".join(f"{','.join(f'({t},{t * k})' for t in range(2, 2 + n))}:a\n" for k, n in [(1, 8), (2, 6)])
    (tmp_path / "p_TRAIN.ts").write_text(STAMPED + body)
    (tmp_path / "p_TEST.ts").write_text(STAMPED + body)
    batch = _load(tmp_path / "p_TRAIN.ts", task="irregular", standardize="none").train_batch(0, 0, 2)
    right = batch["y"]["values"]
    wrong = right.copy()
    wrong[1, 6:] += 5.0                                                   # the padding of series 1 only
    a, b = tasks.irregular(right + 0.1, batch), tasks.irregular(wrong + 0.1, batch)
    for key in ("loss", "interp_mse", "extrap_mse"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6)

def test_irregular_series_standardisation_reads_only_observed_points(tmp_path):
    body = "(0,1),(1,3),(2,100),(3,100):a\n"
    for split in ("TRAIN", "TEST"):
        (tmp_path / f"s_{split}.ts").write_text(STAMPED + body)
    d = _load(tmp_path / "s_TRAIN.ts", task="irregular", standardize="series", observed_fraction=1.0)
    np.testing.assert_allclose(d.train["values"][0, :, 0], [-1, 1, 98, 98])  # mean 2, deviation 1 of 1 and 3


STAMPED_BAD = {
    "does not come after": "(0,1),(2,2),(2,3):a\n",
    "not a \\(time,value\\) point": "(0,1),2,(3,3):a\n",
    "neither a number nor": "(0,1),(noon,2):a\n",
    "is a date-time, but line 5": "(0,1),(1,2):a\n(2024-01-01,1),(2024-01-02,2):b\n",
    "not finite": "(0,1),(inf,2):a\n",
    "NaN or infinite value": "(0,1),(1,nan):a\n",
    "value 'x' is not a number": "(0,1),(1,x):a\n",
    "channel 2's time stamps differ": "(0,1),(1,2):(0,1),(2,2):a\n",
    "no class after the points": "(0,1),(1,2)\n",
}


@pytest.mark.parametrize("problem", STAMPED_BAD)
def test_bad_stamped_files_are_one_line_naming_file_and_line(tmp_path, problem):
    (tmp_path / "t_TRAIN.ts").write_text(STAMPED + STAMPED_BAD[problem])
    (tmp_path / "t_TEST.ts").write_text(STAMPED + "(0,1),(1,2):a\n")
    with pytest.raises(ConfigError, match=problem) as e:
        _load(tmp_path / "t_TRAIN.ts")
    assert "\n" not in str(e.value) and f"{tmp_path / 't_TRAIN.ts'} line " in str(e.value)


def test_splits_and_predict_inputs_must_be_stamped_alike(tmp_path):
    (tmp_path / "m_TRAIN.ts").write_text(STAMPED + "(0,1),(1,2):a\n(0,1),(1,2):b\n")
    (tmp_path / "m_TEST.ts").write_text(_ts("1,2:a\n"))
    with pytest.raises(ConfigError, match="has no time stamps, the training file has number time stamps"):
        _load(tmp_path / "m_TRAIN.ts")
    d = _load(tmp_path / "m_TRAIN.ts", test_path=str(tmp_path / "m_TRAIN.ts"))
    with pytest.raises(ConfigError, match="m_TEST.ts has no time stamps, but the model was trained on series with"):
        ts.read_inputs(tmp_path / "m_TEST.ts", d.preprocessing)
