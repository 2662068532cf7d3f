"""Every config mistake prints one line naming the problem and exits 2, before compiling."""
import pytest

from zoo import config as C
from zoo import schema

BASE = ["model.name=cnn", "data.name=mnist1d"]


def load(*overrides, text=None, tmp_path=None):
    if text is None:
        return C.load(None, [*BASE, *overrides])
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return C.load(path, list(overrides))


@pytest.mark.parametrize("overrides, message", [
    (["train.stepz=3"], "train.stepz: unknown key; did you mean 'train.steps'?"),
    (["model.chanels=[8]"], "model.chanels: unknown key for model 'cnn'; did you mean 'model.channels'?"),
    (["train.steps=abc"], "train.steps: expected int, got 'abc'"),
    (["train.precision=float16"], "train.precision: expected 'float32' | 'bfloat16'"),
    (["model.name=lstmm"], "unknown model 'lstmm'"),
    (["data.name=mnist2d"], "unknown dataset 'mnist2d' (did you mean 'mnist1d'?)"),
    (["optimizer.name=adamm"], "unknown optax optimizer 'adamm' (did you mean 'adam'?)"),
    (["optimizer.schedule=cosin"], "optimizer.schedule: expected 'constant' | 'cosine'"),
    (["optimizer.kwargs.b3=0.9"], "optax.adam takes no argument 'b3'; did you mean 'b2'?"),
    (["trian.steps=1"], "unknown section 'trian'; did you mean 'train'?"),
    (["train.steps"], "is not key=value"),
    (["optimizer.schedule=warmup_cosine"], "needs optimizer.warmup_steps > 0"),
    (["optimizer.accumulate_steps=3"], "must divide train.batch_size=100"),
    (["train.batch_size=0"], "train.batch_size=0: must be an integer >= 1"),
    (["optimizer.weight_decay_mask=(["], "not a valid regular expression"),
])
def test_override_errors(overrides, message):
    with pytest.raises(C.ConfigError) as e:
        load(*overrides)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_name_lists_valid_models():
    with pytest.raises(C.ConfigError, match=r"model.name is required; valid models: .*cnn.*mlp"):
        C.load(None, ["data.name=mnist1d"])


def test_yaml_object_tags_are_refused(tmp_path):
    text = "model: !!python/object/apply:os.system ['echo owned']\ndata: {name: mnist1d}\n"
    with pytest.raises(C.ConfigError, match="line 1: the tag .*os.system. is not a plain value.*no YAML object tags"):
        load(text=text, tmp_path=tmp_path)


def test_declared_type_beats_yaml_guesses(tmp_path):
    cfg = load("run.name=1.10", "optimizer.learning_rate=1e-3", text="model: {name: cnn}\ndata: {name: mnist1d}\n"
               "run: {dir: yes}\ntrain: {steps: 1e3}\n", tmp_path=tmp_path)
    assert cfg.run.name == "1.10" and cfg.run.dir == "yes"
    assert cfg.optimizer.learning_rate == 1e-3 and cfg.train.steps == 1000
    assert isinstance(cfg.train.steps, int)


def test_typed_values_and_tuples():
    cfg = load("model.channels=[8, 16]", "model.padding=same", "model.strides=1", "optimizer.kwargs.b1=0.5")
    assert cfg.model.channels == (8, 16) and cfg.model.padding == "same" and cfg.model.strides == (1,)
    assert cfg.optimizer.kwargs == {"b1": 0.5}


def test_renaming_the_model_starts_its_section_from_the_new_defaults(tmp_path):
    text = "model: {name: cnn, channels: [8]}\ndata: {name: mnist1d, format: vector}\n"
    cfg = load("model.name=gru", "model.hidden_size=32", text=text, tmp_path=tmp_path)
    assert cfg.model_name == "gru" and cfg.model.hidden_size == 32      # no leftover `channels`
    assert cfg.data.format == "vector"                                  # other sections untouched
    assert load("model.name=cnn", text=text, tmp_path=tmp_path).model.channels == (8,)


def test_resolved_config_round_trips(tmp_path):
    cfg = load("train.steps=7", "model.channels=[4]", "model.kernel_sizes=[3]", "model.strides=[1]")
    path = tmp_path / "resolved.yaml"
    path.write_text(schema.dump(cfg))
    again = C.load(path)
    assert again.to_dict() == cfg.to_dict()


def test_missing_file():
    with pytest.raises(C.ConfigError, match="config file 'nope.yaml' not found"):
        C.load("nope.yaml")


@pytest.mark.parametrize("args, message", [
    (["nope.yaml"], "config file 'nope.yaml' not found"),
    (["train.steps=x"], "train.steps: expected int, got 'x'"),
    (["data.name=text", "data.path=/no/such/file.txt"], "data.path='/no/such/file.txt': no such file"),
    (["model.name=cnn", "model.dims=2"], "cannot take mnist1d inputs of shape [100, 40]"),
    (["model.num_groups=4", "model.norm=group"], "num_groups=4 must divide every channel count"),
    (["train.batch_size=5000"], "larger than the training set"),
    (["--resume", "runs/nothing"], "runs/nothing is not a run directory (it has no config.yaml)"),
])
def test_cli_errors_are_one_line_exit_2(run_cli, args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_print_config(run_cli):
    proc = run_cli("--print-config", "train.steps=17")
    assert proc.returncode == 0
    assert "steps: 17" in proc.stdout and "name: cnn" in proc.stdout


def test_shipped_configs_name_their_shipped_data_from_any_folder_and_a_typo_gets_a_suggestion(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shakespeare = C.load(C.config_path("shakespeare_char"))
    assert shakespeare.data.path == str(C.PACKAGE / "data" / "files" / "tinyshakespeare.txt")
    assert C.load(C.config_path("cora_gcn")).data.path == str(C.PACKAGE / "data" / "files" / "planetoid" / "cora.npz")
    assert C.load(C.config_path("wine_csv_mlp")).data.path == "data/wine.csv"  # the user's file: from where zoo runs
    mine = tmp_path / "c.yaml"
    mine.write_text("model: {name: gpt}\ndata: {name: text, path: ../data/files/tinyshakespeare.txt}\n")
    assert C.load(mine).data.path == "../data/files/tinyshakespeare.txt"  # not a shipped file from there
    with pytest.raises(C.ConfigError, match=r"did you mean 'shakespeare_char'\?"):
        C.config_path("shakespear_char")


def test_logging_defaults_to_fifty_records_a_run_and_user_files_name_the_run():
    assert load("train.steps=6000").train.log_every == 120
    assert load("train.steps=20").train.log_every == 1 and load("train.log_every=7").train.log_every == 7
    mlp = C.config_path("mnist1d_mlp")
    assert C.load(mlp).run.name == "mnist1d_mlp"
    assert C.load(mlp, ["data.name=array", "data.path=data/iris.csv"]).run.name == "iris_mlp"
    assert C.load(mlp, ["data.name=text", "data.path=books/*.txt"]).run.name == "books_mlp"
    assert C.load(mlp, ["data.name=array", "data.path=iris.csv", "run.name=mine"]).run.name == "mine"
