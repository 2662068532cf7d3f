"""`zoo probe` on a run of several seeds trained by `zoo train`: one replica at a time."""
from zoo.commands.cli import main


def test_one_replica_of_a_stacked_run_is_probed(tmp_path, capsys):
    assert main(["train", "model.name=mlp", "model.width=8", "data.name=mnist1d", "train.seeds=2", "train.steps=3",
                 "train.eval_batch_size=500", f"run.dir={tmp_path}", "run.name=s", "run.plots=false"]) == 0
    assert main(["probe", str(tmp_path / "s"), "gradflow", "examples=8"]) == 0     # the first replica
    assert main(["probe", str(tmp_path / "s"), "gradflow", "examples=8", "--replica", "1"]) == 0
    assert main(["probe", str(tmp_path / "s"), "gradflow", "examples=8", "--replica", "2"]) == 2
    assert "replica=0..1" in capsys.readouterr().err
    assert (tmp_path / "s" / "probes" / "gradflow.png").stat().st_size > 0
