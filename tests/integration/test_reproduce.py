"""The results table is written from real training runs, never by hand."""
import json

from conftest import ROOT

from zoo.commands import reproduce


def test_reproduce_trains_and_writes_the_table(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # reproduce runs from the repository root; restored afterwards
    args = ["karate_gcn", "--out", str(tmp_path), "--no-readme", "--set", "train.steps=20", "run.plots=false"]
    assert reproduce.main(args) == 0
    (row,) = json.loads((tmp_path / "results.json").read_text())
    summary = json.loads((tmp_path / "runs" / "karate_gcn-seed0" / "summary.json").read_text())
    assert row["config"] == "karate_gcn" and row["values"] == [summary["eval_accuracy"]]
    assert row["steps"] == 20 and row["params"] == summary["params"]
    assert f"| karate_gcn | eval_accuracy | {100 * summary['eval_accuracy']:.1f}%" in (tmp_path / "results.md").read_text()
    assert reproduce.main(["--out", str(tmp_path), "--no-readme", "--table-only"]) == 0   # trains nothing
    assert json.loads((tmp_path / "results.json").read_text()) == [row]
