"""Deep Sets on trained runs: accuracy against set size (python -m zoo.figures.sets) counts
rounded sums right, and the symmetry probe finds Deep Sets invariant to the order of a set's
elements where a GRU reading the same sets is not."""
from __future__ import annotations

import json

import numpy as np
import pytest

from zoo import config, inference, probes, train
from zoo import experiment as ex
from zoo.figures import sets

DATA = ["data.name=digit_sets", "data.elements=digit", "data.num_train=2000", "data.num_test=100",
        "data.test_size=20", "train.batch_size=32", "train.eval_batch_size=100", "train.steps=300",
        "optimizer.learning_rate=3e-3", "run.plots=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    for name, model in (("ds", ["model.name=deepsets", "model.width=32", "model.phi_depth=2"]),
                        ("gru", ["model.name=gru", "model.hidden_size=32"])):
        train.fit(config.load(None, [*model, *DATA, f"run.dir={root}", f"run.name={name}"]))
    return root


def test_accuracy_by_size_counts_rounded_sums(runs, capsys):
    out = runs / "figure" / "sizes.png"
    assert sets.main([str(runs / "ds"), str(runs / "gru"), "--output", str(out), "--sizes", "1", "5", "20",
                      "--count", "64"]) == 0
    numbers = json.loads(out.with_suffix(".json").read_text())
    assert out.stat().st_size > 0 and "| ds | deepsets | 1 |" in out.with_suffix(".md").read_text()
    assert numbers["ds"]["sizes"] == [1, 5, 20] and numbers["ds"]["train_max_size"] == 10
    run = ex.load_run(runs / "ds")
    fresh = run.exp.dataset.sets(5, 64)
    direct = np.mean(np.round(inference.outputs(run, fresh["x"][np.arange(64)])) == fresh["y"])
    assert numbers["ds"]["accuracy"][0][1] == pytest.approx(direct)
    # summing one-hots extrapolates; a GRU trained on sets of <= 10 does not reach sums of 20 digits
    assert numbers["ds"]["accuracy"][0][2] > numbers["gru"]["accuracy"][0][2]


def test_symmetry_probe_uses_set_permutations(runs):
    deepsets = probes.run("symmetry", ex.load_run(runs / "ds"), examples=64, num=4)
    assert deepsets["group"] == "set" and deepsets["exact_for"] == "every element"
    assert deepsets["max_error_exact"] < 1e-5
    gru = probes.run("symmetry", ex.load_run(runs / "gru"), group="set", examples=64, num=4)
    assert gru["max_error_other"] > 1e-4 and gru["max_error_other"] > 1000 * deepsets["max_error_exact"]


def test_export_takes_sets_of_any_size(runs):
    from zoo import export

    run = ex.load_run(runs / "ds")
    paths = export.write(run)
    assert json.loads(paths["manifest"].read_text())["symbolic_dims"].startswith("b, t")
    exported = export.load(paths["artifact"])
    for size in (3, 30):   # shorter and longer than the test sets (20) it was exported from
        x = run.exp.dataset.sets(size, 4)["x"][np.arange(4)]
        np.testing.assert_allclose(exported.call(x), run.model.apply(run.params, x), atol=1e-4)
