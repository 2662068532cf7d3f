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


def test_your_own_sentence_pairs_train_predict_and_evaluate(tmp_path):
    """data.name=parallel_text on a TSV the user wrote trains a shipped seq2seq config unchanged; predict
    reads a character never seen in training as UNK (documented) rather than failing, and translates with
    the vocabulary the run stored, whatever the pairs file holds later; evaluate refuses a changed file."""
    from zoo.data.translation import words
    (tmp_path / "pairs.tsv").write_text("".join(f"{words(n, 'en')}\t{words(n, 'de')}\n" for n in range(60)))
    train = ["train", "numbers_en_de_gru", "data.name=parallel_text", "data.path=pairs.tsv", "model.embed_dim=8",
             "model.hidden_size=16", "model.attention_size=8", "train.steps=3", "train.batch_size=8",
             "train.eval_batch_size=8", "run.plots=false"]
    done = zoo(tmp_path, *train)
    assert done.returncode == 0, done.stderr[-2000:]
    run = "runs/pairs_gru_seq2seq"     # the file's name and the model's, as for every data.path=FILE
    (tmp_path / "in.txt").write_text("forty-two\nseven\nzwölf\n")      # ö: not in the English side
    done = zoo(tmp_path, "predict", run, "--input", "in.txt", "--output", "out.txt")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len((tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")) == 4   # three lines, each ended
    done = zoo(tmp_path, "evaluate", run)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads(done.stdout)
    assert 0 <= metrics["eval_greedy_chrf"] <= 100 and 0 <= metrics["eval_beam_exact_match"] <= 1
    with (tmp_path / "pairs.tsv").open("a") as f:      # the file changes after training: new characters
        f.write("a quiet pair\tein ruhiges Paar\n")
    done = zoo(tmp_path, "predict", run, "--input", "in.txt", "--output", "again.txt")
    assert done.returncode == 0 and (tmp_path / "again.txt").read_bytes() == (tmp_path / "out.txt").read_bytes()
    done = zoo(tmp_path, "evaluate", run)                # its held-out pairs are not the run's any more
    assert done.returncode == 2 and "no longer gives the pairs" in done.stderr and done.stderr.count("\n") == 1
    (tmp_path / "bad.tsv").write_text("one\teins\ntwo zwei\n")
    done = zoo(tmp_path, *train[:2], "data.name=parallel_text", "data.path=bad.tsv")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "bad.tsv line 2: no tab" in done.stderr
    assert not (tmp_path / "runs" / "bad_gru_seq2seq").exists()
