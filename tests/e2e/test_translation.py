"""A translation run through the `zoo` command: train a few steps, translate a text file line
for line, evaluate with BLEU and chrF; a bad input file is one line and exit 2; export the greedy
decode and run it without zoo."""
import json
import subprocess
import sys

import numpy as np
import pytest
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


# what a server runs: jax and numpy only, never zoo
SERVE = """
import sys, numpy as np, jax
exported = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
sources = np.load(sys.argv[2], allow_pickle=False)
np.savez(sys.argv[3], **{name: np.asarray(exported.call(sources[name])) for name in sources.files})
assert "zoo" not in sys.modules, "the artifact must run without zoo"
"""
MODELS = {"transformer": ["numbers_en_de_transformer", "model.num_layers=1", "model.d_model=16", "model.num_heads=2"],
          "gru": ["numbers_en_de_gru", "model.embed_dim=8", "model.hidden_size=16", "model.attention_size=8"]}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_export_is_the_greedy_decode_and_runs_without_zoo(tmp_path, model):
    """`zoo export` of a translation run writes the whole greedy decode: source ids [b, S] ->
    output ids [b, L], equal to zoo's own greedy translation at a batch smaller and one larger
    than the run's evaluation batch (b is symbolic), in a process that never imports zoo."""
    from zoo import experiment, translating
    first, *overrides = MODELS[model]
    done = zoo(tmp_path, "train", first, *overrides, "data.max_number=99", "train.steps=150", "train.batch_size=16",
               "train.eval_batch_size=8", "optimizer.learning_rate=1e-2", "optimizer.warmup_steps=5", "run.plots=false",
               "run.name=m")
    assert done.returncode == 0, done.stderr[-2000:]
    done = zoo(tmp_path, "export", "runs/m", "--output", "m.jaxexport")
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "m.jaxexport.json").read_text())
    run = experiment.load_run(tmp_path / "runs" / "m")
    source = run.exp.dataset.test["source"]
    assert manifest["inputs"] == [{"name": "source", "shape": ["b", source.shape[1]], "dtype": "int32"}]
    assert manifest["output"]["shape"] == ["b", run.cfg.model.max_decode_length]
    assert manifest["vocab"] == list(run.exp.dataset.vocab) and manifest["call"] == "exported.call(source)"
    sources = {"three": source[:3], "eleven": source[:11]}
    np.savez(tmp_path / "sources.npz", **sources)
    env = {k: v for k, v in subprocess_env().items() if k != "PYTHONPATH"}
    served = subprocess.run([sys.executable, "-c", SERVE, "m.jaxexport", "sources.npz", "out.npz"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    outputs = np.load(tmp_path / "out.npz")
    for name, ids in sources.items():
        np.testing.assert_array_equal(outputs[name], translating.translate_ids(run, ids, beam_size=1), err_msg=name)
    assert len({row.tobytes() for row in outputs["eleven"]}) > 1     # trained enough to tell sources apart
