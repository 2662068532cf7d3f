"""A translation run through the `zoo` command: train a few steps, translate a text file line
for line, evaluate with BLEU and chrF; a bad input file is one line and exit 2."""
import json
import subprocess

from conftest import subprocess_env, zoo_command

TINY = ["train", "numbers_en_de_transformer", "data.max_number=99", "model.num_layers=1", "model.d_model=16",
        "model.num_heads=2", "train.steps=3", "train.batch_size=8", "train.eval_batch_size=8", "run.plots=false",
        "run.name=t"]


def zoo(tmp_path, *args):
    env = subprocess_env()
    return subprocess.run([zoo_command(), *args], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)


def test_train_predict_evaluate(tmp_path):
    assert zoo(tmp_path, *TINY).returncode == 0
    (tmp_path / "in.txt").write_text("forty-two\nseven\nninety-nine\n")
    done = zoo(tmp_path, "predict", "runs/t", "--input", "in.txt", "--output", "out.txt")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len((tmp_path / "out.txt").read_text().splitlines()) == 3
    done = zoo(tmp_path, "predict", "runs/t", "--input", "in.txt", "--output", "out.csv")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and ".txt" in done.stderr
    done = zoo(tmp_path, "evaluate", "runs/t")
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads(done.stdout)
    for key in ("eval_exact_match", "eval_greedy_bleu", "eval_greedy_chrf", "eval_beam_exact_match", "eval_beam_chrf"):
        assert 0 <= metrics[key] <= 100
    assert metrics["eval_greedy_exact_match"] == metrics["eval_exact_match"]   # teacher-forced exact = greedy's
