"""data.name=array: the user's .npz/.npy/.csv/.tsv. Same numbers as the built-in data when the
bytes are the same, preprocessing fitted on training rows only and applied per batch, every
bad file one line before anything compiles (resume: test_data_resume.py)."""
import json
import re

import numpy as np
import pytest
from conftest import ROOT

from zoo import config, train
from zoo import experiment as ex
from zoo.commands.cli import alias
from zoo.data import arrays, examples, inputs, preprocess
from zoo.data.base import Rows, held_out


def _cfg(tmp_path, path, *overrides, base=None):
    """A small run (an MLP unless overridden) on data.name=array reading `path`."""
    return config.load(base, ["model.name=mlp", "data.name=array", f"data.path={path}",
                              "train.batch_size=20", "train.eval_batch_size=50", "train.log_every=10",
                              f"run.dir={tmp_path / 'runs'}", "run.name=t", "run.plots=false", *overrides])


def test_mnist1d_from_an_npz_gives_the_builtin_numbers(tmp_path):
    """Bit-identical arrays through data.name=array: identical evaluation metrics."""
    examples.mnist1d_npz(tmp_path / "m.npz")
    common = [f"run.dir={tmp_path}", "run.plots=false", "train.steps=10", "train.log_every=10",
              "train.eval_batch_size=1000"]
    base = ROOT / "configs" / "mnist1d_cnn.yaml"
    builtin = train.fit(config.load(base, [*common, "run.name=builtin"]))
    own = train.fit(config.load(base, [*common, "run.name=own", "data.name=array", f"data.path={tmp_path / 'm.npz'}"]))
    assert own["eval_loss"] == builtin["eval_loss"] and own["eval_accuracy"] == builtin["eval_accuracy"]


@pytest.mark.parametrize("kind", ["wine-csv", "breast-cancer-csv"])
def test_standardised_mlp_learns_the_sklearn_tables_from_csv(tmp_path, kind):
    examples.make(kind, tmp_path / "t.csv")
    cfg = _cfg(tmp_path, tmp_path / "t.csv", "data.standardize=true", "train.steps=300", "train.batch_size=32",
               "model.width=64")
    summary = train.fit(cfg)
    assert summary["eval_accuracy"] >= 0.9
    assert config.load(tmp_path / "runs" / "t" / "config.yaml").data.standardize


def _npy_pair(tmp_path, n=200, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) * np.arange(1, d + 1) + 5).astype(np.float32)
    y = (x[:, 0] > 5).astype(np.int64)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return x, y


def test_npy_is_memory_mapped_and_standardised_per_batch_with_training_statistics(tmp_path):
    x, y = _npy_pair(tmp_path)
    cfg = arrays.ArrayConfig(path=str(tmp_path / "x.npy"), y_path=str(tmp_path / "y.npy"), standardize=True,
                             val_size=30, test_fraction=0.25)
    ds = arrays.load(cfg)
    assert isinstance(ds.train["x"].source, np.memmap)      # rows are read where indexed, never copied whole
    train_rows = ds.train["x"].index                          # training rows only: validation and test unseen
    assert len(train_rows) == 200 - 50 - 30 and len(ds.val["y"]) == 30 and len(ds.test["y"]) == 50
    mean, std = x[train_rows].astype(np.float64).mean(0), x[train_rows].astype(np.float64).std(0)
    stats = ds.preprocessing["standardize"]
    np.testing.assert_allclose(stats["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(stats["std"], std, rtol=1e-10)
    batch = ds.train_batch(seed=3, step=7, batch_size=20)
    rows = train_rows[ds.train_indices(3, 7, 20)]
    np.testing.assert_allclose(batch["x"], (x[rows] - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(batch["y"], y[rows])
    again = arrays.load(cfg).train_batch(seed=3, step=7, batch_size=20)
    np.testing.assert_array_equal(batch["x"], again["x"])    # a pure function of (seed, step)


def test_held_out_split_is_seeded_and_stratified():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    train_a, test_a = held_out(100, 0.2, 5, labels)
    train_b, test_b = held_out(100, 0.2, 5, labels)
    np.testing.assert_array_equal(test_a, test_b)
    assert [int((labels[test_a] == c).sum()) for c in range(3)] == [10, 6, 4]
    assert sorted(np.concatenate([train_a, test_a]).tolist()) == list(range(100))
    assert not np.array_equal(test_a, held_out(100, 0.2, 6, labels)[1])


def test_rows_read_only_what_is_indexed_and_slice_lazily():
    source = np.arange(20).reshape(10, 2)
    rows = Rows(source, np.array([7, 2, 5, 1]), lambda a: a * 10)
    np.testing.assert_array_equal(rows[np.array([1, 3])], [[40, 50], [20, 30]])
    assert len(rows[:-1]) == 3 and isinstance(rows[1:], Rows)


def test_task_follows_the_labels_and_csv_text_labels_become_class_names(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "reg.npz", x=rng.standard_normal((50, 3)), y=rng.standard_normal((50, 2)))
    reg = arrays.load(arrays.ArrayConfig(path=str(tmp_path / "reg.npz")))
    assert reg.task == "regression" and reg.model_defaults == {"num_outputs": 2}
    assert reg.train_batch(0, 0, 10)["y"].shape == (10, 2)
    lines = ["colour,a,b"] + [f"{c},{i},{i % 3}" for i, c in enumerate(["red", "blue", "green"] * 10)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    ds = arrays.load(arrays.ArrayConfig(path=str(tmp_path / "t.csv"), label="colour"))
    assert ds.task == "classification" and ds.model_defaults == {"num_outputs": 3}
    assert ds.preprocessing["class_names"] == ["blue", "green", "red"] and ds.preprocessing["columns"] == ["a", "b"]
    first = ds.train["x"].index[0]
    assert ds.train["y"][0] == ["blue", "green", "red"].index(["red", "blue", "green"][first % 3])
    forced = arrays.load(arrays.ArrayConfig(path=str(tmp_path / "reg.npz"), y_key="y", x_key="x", task="regression"))
    assert forced.task == "regression"


def test_shape_reshapes_each_row_for_sequence_models(tmp_path):
    examples.mnist1d_npz(tmp_path / "m.npz")
    cfg = _cfg(tmp_path, tmp_path / "m.npz", "data.shape=[40,1]", "model.name=gru", "model.hidden_size=8")
    exp = ex.build(cfg)
    assert ex.train_batch(exp, 0)["x"].shape == (20, 40, 1)
    ex.init_state(exp)                                    # the GRU takes [B, T, 1]


def test_predict_inputs_are_transformed_as_training_batches(tmp_path):
    """preprocess.read_inputs on new rows (columns in another order, no label, an extra column)
    equals the dataset's own batch of those rows; the record survives save/load."""
    examples.make("wine-csv", tmp_path / "wine.csv")
    ds = arrays.load(arrays.ArrayConfig(path=str(tmp_path / "wine.csv"), standardize=True))
    preprocess.save(tmp_path, ds.preprocessing)
    pre = preprocess.load(tmp_path)
    assert pre == json.loads(json.dumps(ds.preprocessing))
    header, *rows = (tmp_path / "wine.csv").read_text().splitlines()
    names = header.split(",")
    test_rows = [rows[i].split(",") for i in ds.test["x"].index]
    shuffled = ["extra"] + names[:-1][::-1]
    lines = [",".join(shuffled)] + [",".join(["9"] + r[:-1][::-1]) for r in test_rows]
    (tmp_path / "new.csv").write_text("\n".join(lines) + "\n")
    np.testing.assert_allclose(inputs.read_inputs(tmp_path / "new.csv", pre).x,
                               ds.test["x"][np.arange(len(test_rows))], rtol=1e-6)
    with pytest.raises(config.ConfigError, match="bad.csv has no column 'alcohol' \\(and 11 more\\), which the model "
                       "was trained on; its columns are malic_acid; give the training columns alcohol, "):
        (tmp_path / "bad.csv").write_text("malic_acid\n1.0\n")
        inputs.read_inputs(tmp_path / "bad.csv", pre)
    with pytest.raises(config.ConfigError, match="bad.npy: inputs have rows of shape \\[3\\].*trained on rows of shape \\[13\\]"):
        np.save(tmp_path / "bad.npy", np.zeros((2, 3), np.float32))
        inputs.read_inputs(tmp_path / "bad.npy", pre)


# ----------------------------------------------------------------------------- mistakes
def _write_bad(tmp_path, name):
    """One bad input file per case: (path, extra overrides)."""
    x, y = np.zeros((10, 3), np.float32), np.arange(10) % 2
    files = {
        "missing_file": lambda p: None,
        "missing_key": lambda p: np.savez(p, inputs=x, y=y),
        "lengths": lambda p: np.savez(p, x=x, y=y[:9]),
        "nan": lambda p: np.savez(p, x=np.where(np.eye(10, 3) > 0, np.nan, x), y=y),
        "fractional": lambda p: np.savez(p, x=x, y=y + 0.5),
        "negative": lambda p: np.savez(p, x=x, y=y - 1),
        "ragged": lambda p: np.save(p, np.array([[1.0, 2.0], [3.0]], dtype=object), allow_pickle=True),
        "text_x": lambda p: np.savez(p, x=np.array([["a"]] * 10), y=y),
        "csv_ragged": lambda p: p.write_text("a,b,label\n1,2,0\n3,4\n"),
        "csv_text": lambda p: p.write_text("a,b,label\n1,2,0\n3,x,1\n"),
        "csv_nan": lambda p: p.write_text("a,b,label\n1,2,0\n3,nan,1\n"),
        "csv_column": lambda p: p.write_text("a,b,target\n1,2,0\n3,4,1\n"),
    }
    suffix = {"ragged": ".npy"}.get(name, ".csv" if name.startswith("csv") else ".npz")
    path = tmp_path / f"{name}{suffix}"
    files[name](path)
    return path


@pytest.mark.parametrize("case, extra, message", [
    ("missing_file", [], "no such file"),
    ("missing_key", [], "has no array 'x' .*set data.x_key"),
    ("lengths", [], "have 10 rows but the labels \\(y\\) have 9"),
    ("nan", [], "inputs \\(x\\) row 0 has a NaN"),
    ("fractional", ["data.task=classification"], "row 0 is 0.5, not an integer class"),
    ("negative", [], "row 0 is -1, outside \\[0, 1\\)"),
    ("negative", ["data.num_classes=1"], "outside \\[0, 1\\)"),
    ("ragged", ["data.y_path={tmp}/y.npy"], "holds Python objects"),
    ("text_x", [], "not numbers"),
    ("csv_ragged", [], "line 3: 2 values but the header names 3 columns"),
    ("csv_text", [], "line 3, column 'b': 'x' is not a number"),
    ("csv_nan", [], "line 3, column 'b': 'nan' is not a finite float32 number"),
    ("csv_column", [], "no column 'label' .*set data.label"),
    ("lengths", ["data.shape=[2,2]"], "have 10 rows"),
])
def test_bad_input_is_one_line_exit_2_and_no_run_directory(tmp_path, capsys, case, extra, message):
    path = _write_bad(tmp_path, case)
    np.save(tmp_path / "y.npy", np.zeros(2, np.int64))
    code = alias("train", ["model.name=mlp", "data.name=array", f"data.path={path}", *(e.format(tmp=tmp_path) for e in extra),
                 f"run.dir={tmp_path / 'runs'}", "train.steps=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and path.name in err, err
    assert re.search(message, err), err
    assert not (tmp_path / "runs").exists()


def test_wrong_data_shape_and_npy_without_labels_are_config_errors(tmp_path):
    _npy_pair(tmp_path)
    with pytest.raises(config.ConfigError, match="data.shape=\\[4, 2\\] has 8 entries but each row has 6"):
        arrays.load(arrays.ArrayConfig(path=str(tmp_path / "x.npy"), y_path=str(tmp_path / "y.npy"), shape=(4, 2)))
    with pytest.raises(config.ConfigError, match="give the labels with data.y_path"):
        arrays.load(arrays.ArrayConfig(path=str(tmp_path / "x.npy")))


# ----------------------------------------------------------------------------- good files as users save them
PLAIN = "a,b,label\n" + "".join(f"{i % 5 * 0.5},{i % 3 - 1},{'yes' if i % 2 else 'no'}\n" for i in range(30))


@pytest.mark.parametrize("name, content", [
    ("bom.csv", "\ufeff" + PLAIN),                                    # Excel's "CSV UTF-8"
    ("crlf.csv", PLAIN.replace("\n", "\r\n")),
    ("blank.csv", PLAIN + "\n\n"),                                    # trailing blank lines
    ("inner.csv", PLAIN.replace("\n", "\n\n", 3)),                    # blank lines between rows
    ("spaces.csv", PLAIN.replace(",", ", ")),
    ("utf16.csv", PLAIN.encode("utf-16")),                            # Excel's "Unicode text"
    ("bom_crlf.csv", ("\ufeff" + PLAIN).replace("\n", "\r\n")),
    ("t.tsv", PLAIN.replace(",", "\t")),
])
def test_good_files_read_as_the_plain_csv(tmp_path, name, content):
    """Class 5 of issue #30: what spreadsheets save is read exactly as the plain file."""
    (tmp_path / "plain.csv").write_text(PLAIN)
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    want = arrays.load(arrays.ArrayConfig(path=str(tmp_path / "plain.csv")))
    got = arrays.load(arrays.ArrayConfig(path=str(path)))
    assert got.preprocessing["columns"] == ["a", "b"] and got.preprocessing["class_names"] == ["no", "yes"]
    np.testing.assert_array_equal(got.train["x"][np.arange(24)], want.train["x"][np.arange(24)])
    np.testing.assert_array_equal(got.train["y"], want.train["y"])


def test_a_large_csv_is_read_in_chunks_with_the_same_numbers(tmp_path, monkeypatch):
    """Chunk boundaries change nothing: a table read 200 characters at a time equals one read whole,
    text labels numbered in sorted order across chunks."""
    from zoo.data import tables
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 4)).round(4)
    names = np.array(["zebra", "ant", "moth"])[rng.integers(0, 3, 300)]
    (tmp_path / "t.csv").write_text("a,b,c,d,label\n" + "".join(
        ",".join(map(str, row)) + f",{n}\n" for row, n in zip(x, names)))
    whole = tables.read_table(tmp_path / "t.csv", "csv", None, "label")
    monkeypatch.setattr(tables, "CHUNK_CHARS", 200)
    chunked = tables.read_table(tmp_path / "t.csv", "csv", None, "label")
    np.testing.assert_array_equal(chunked.x, whole.x)
    np.testing.assert_array_equal(chunked.x, x.astype(np.float32))
    y, classes = chunked.labels.result()
    assert classes == ["ant", "moth", "zebra"] and [classes[i] for i in y] == names.tolist()
    assert whole.labels.result()[1] == classes


# ----------------------------------------------------------------------------- zoo predict never loses a file
@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    """A run trained briefly on a CSV whose labels are names (class names stored)."""
    tmp = tmp_path_factory.mktemp("named")
    (tmp / "flowers.csv").write_text(PLAIN.replace("yes", "setosa").replace("no", "virginica"))
    train.fit(_cfg(tmp, tmp / "flowers.csv", "train.steps=3", "train.batch_size=8", "train.eval_batch_size=8",
                   "model.width=4"))
    return tmp / "runs" / "t"


def _predict(run_dir, *args):
    return alias("predict", [str(run_dir), *map(str, args)])


def test_predict_writes_class_names_atomically_and_never_over_a_file(named_run, tmp_path, capsys):
    new = tmp_path / "new.csv"
    new.write_text("b,a\n0.5,1\n-1,0\n")                              # columns in another order, no label
    assert _predict(named_run, "--input", new, "--output", tmp_path / "p.csv") == 0
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "class,class_name,probabilities_setosa,probabilities_virginica" and len(rows) == 3
    assert all(r.split(",")[1] == ["setosa", "virginica"][int(r.split(",")[0])] for r in rows[1:])
    assert _predict(named_run, "--input", new, "--output", tmp_path / "p.npz") == 0
    with np.load(tmp_path / "p.npz") as p:
        assert p["class_name"].tolist() == [["setosa", "virginica"][c] for c in p["class"]]
    capsys.readouterr()
    before = new.read_bytes()
    cases = [(new, "is the input file: predictions never replace their inputs"),
             (tmp_path / "p.csv", "p.csv exists; add --overwrite to replace it"),
             (tmp_path, "a folder; give a file name in it"),
             (tmp_path / "nowhere" / "p.csv", "the folder"),
             (tmp_path / "p.txt", "write predictions to a .npz or .csv file")]
    for output, message in cases:
        assert _predict(named_run, "--input", new, "--output", output) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert new.read_bytes() == before
    assert _predict(named_run, "--input", new, "--output", tmp_path / "p.csv", "--overwrite") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv", "p.csv", "p.npz"]   # no temporary file left


@pytest.mark.parametrize("content, message", [
    ("b,a\n", "new.csv: no rows; give one or more examples"),
    ("a,c\n1,2\n", "new.csv has no column 'b', which the model was trained on; its columns are a, c; give the "
                   "training columns a, b"),
    ("a,b\n1,setosa\n", "new.csv line 2, column 'b': 'setosa' is not a number"),
    ("a,b\n1,2,3\n", "new.csv line 2: 3 values but the header names 2 columns"),
    ("a,a,b\n1,2,3\n", "new.csv: the header names column 'a' twice"),
])
def test_predict_mistakes_name_the_file_and_column_and_write_nothing(named_run, tmp_path, capsys, content, message):
    (tmp_path / "new.csv").write_text(content)
    capsys.readouterr()
    assert _predict(named_run, "--input", tmp_path / "new.csv", "--output", tmp_path / "p.csv") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv"]


def test_the_zoo_command_refuses_in_one_line_from_outside_the_checkout(named_run, tmp_path):
    """What the user types: the console script, from a folder outside the checkout."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    zoo = shutil.which("zoo", path=str(Path(sys.executable).parent))
    (tmp_path / "new.csv").write_text("a,b\n1,2\n")
    cases = [(["predict", str(named_run), "--input", "new.csv", "--output", "new.csv"], "is the input file"),
             (["train", "mnist1d_mlp", "data.name=os:system", "data.command=touch ran"], "standard-library module")]
    for argv, message in cases:
        proc = subprocess.run([zoo, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert (tmp_path / "new.csv").read_text() == "a,b\n1,2\n" and not (tmp_path / "ran").exists()


def test_npz_text_labels_are_class_names_and_an_empty_one_is_refused(tmp_path):
    x = np.linspace(0, 1, 30).reshape(10, 3)
    np.savez(tmp_path / "named.npz", x=x, y=np.array(["owl", "cat"] * 5))
    ds = arrays.load(arrays.ArrayConfig(path=str(tmp_path / "named.npz")))
    assert ds.preprocessing["class_names"] == ["cat", "owl"] and ds.model_defaults == {"num_outputs": 2}
    np.savez(tmp_path / "empty.npz", x=x, y=np.array(["owl", "cat", ""] * 3 + ["cat"]))
    with pytest.raises(config.ConfigError, match="empty.npz: labels row 2 is an empty label"):
        arrays.load(arrays.ArrayConfig(path=str(tmp_path / "empty.npz")))
