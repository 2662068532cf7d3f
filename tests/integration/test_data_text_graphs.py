"""`text` from a folder or a glob (one corpus, sorted files) and `graph_npz` (many small graphs
in one .npz, batched into padded GraphsTuples)."""
import re

import numpy as np
import pytest

from zoo.commands.cli import alias
from zoo.data import examples, graph_npz, text
from zoo.graphs import batch_graphs


def test_text_reads_a_folder_or_a_glob_as_one_sorted_corpus(tmp_path):
    (tmp_path / "sub").mkdir()
    for name, body in {"b.txt": "second ", "a.txt": "first ", "sub/c.txt": "third", ".hidden": "never"}.items():
        (tmp_path / name).write_text(body)
    assert text.read_text(str(tmp_path)) == "first second third"
    assert text.read_text(str(tmp_path / "*.txt")) == "first second "
    assert text.read_text(str(tmp_path / "**" / "*.txt")) == "first second third"
    ds = text.load(text.TextConfig(path=str(tmp_path / "*.txt"), seq_len=2, val_fraction=0.5))
    assert ds.preprocessing == {"format": "text", "vocab": ds.vocab} and ds.decode(ds.tokens) == "first second "


@pytest.mark.parametrize("files, path, message", [
    ({}, "*.md", "no such file, or no files in that folder or glob"),
    ({"a.txt": b"caf\xe9"}, "a.txt", "a.txt line 1: not UTF-8 text \\(byte 0xe9, which Latin-1 reads as 'é'\\)"),
])
def test_text_mistakes_are_one_line(tmp_path, capsys, files, path, message):
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    code = alias("train", ["model.name=lstm", "data.name=text", f"data.path={tmp_path / path}", f"run.dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "runs").exists()


def test_graph_npz_batches_the_files_graphs(tmp_path):
    examples.graphs_npz(tmp_path / "g.npz", num_graphs=50)
    with np.load(tmp_path / "g.npz") as f:
        a = dict(f)
    ds = graph_npz.load(graph_npz.GraphNpzConfig(path=str(tmp_path / "g.npz")))
    assert len(ds.train_graphs) + len(ds.test_graphs) == 50 and ds.model_defaults == {"num_outputs": 3}
    assert ds.max_nodes == a["n_node"].max() and not ds.shardable
    batch = ds.train_batch(seed=0, step=0, batch_size=4)
    rows = ds.train_indices(0, 0, 4)
    assert batch["x"].num_graphs == 5 and batch["mask"].tolist() == [1, 1, 1, 1, 0]
    assert batch["x"].nodes.shape == (4 * ds.max_nodes + 1, 1) and batch["y"][:4].tolist() == ds.train["y"][rows].tolist()
    first = batch_graphs([ds.train_graphs[i] for i in rows])
    np.testing.assert_array_equal(batch["x"].senders[:len(first.senders)], first.senders)
    index = 7   # the file's graph 7 is in one of the splits, with its own edges, numbered from 0
    start = int(a["n_edge"][:index].sum())
    edges = set(zip(a["senders"][start:start + a["n_edge"][index]], a["receivers"][start:start + a["n_edge"][index]]))
    candidates = ds.train_graphs + ds.test_graphs
    assert any(set(zip(c.senders, c.receivers)) == edges and len(c.nodes) == a["n_node"][index] for c in candidates)


def _graph_file(tmp_path, **changes):
    examples.graphs_npz(tmp_path / "g.npz", num_graphs=10)
    with np.load(tmp_path / "g.npz") as f:
        a = dict(f)
    for key, value in changes.items():
        if value is None:
            a.pop(key)
        else:
            a[key] = value(a)
    np.savez(tmp_path / "bad.npz", **a)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize("changes, message", [
    ({"labels": None}, "has no array 'labels'"),
    ({"senders": lambda a: np.where(np.arange(len(a["senders"])) == 3, 99, a["senders"])},
     "senders\\[3\\] = 99 but its graph 0 has \\d+ nodes"),
    ({"n_node": lambda a: a["n_node"][:-1]}, "n_node has 9 rows, expected 10"),
    ({"labels": lambda a: a["labels"] - 1}, "labels row \\d+ is -1, outside"),
    ({"nodes": lambda a: np.full_like(a["nodes"], np.inf)}, "nodes row 0 has a NaN, infinite or out-of-float32-range value"),
])
def test_graph_npz_mistakes_are_one_line(tmp_path, capsys, changes, message):
    path = _graph_file(tmp_path, **changes)
    code = alias("train", ["model.name=gin", "model.task_level=graph", "data.name=graph_npz", f"data.path={path}",
                 f"run.dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "runs").exists()
