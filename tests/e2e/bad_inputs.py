"""The bad-input corpus: command lines and files a user might get wrong, each of which must end
in one line on stderr and exit 2 with no run directory made, or be read as documented.

`CASES` holds (arguments, files, expected text); "{tmp}" in an argument or a file's content is
the test's scratch folder, `files` maps a name there to its content (str, or bytes). Used by
tests/e2e/test_reliability.py, in-process through zoo.commands.cli.main.
"""
import numpy as np

BASE = ["model.name=mlp", "data.name=mnist1d", "train.steps=2", "run.plots=false"]
GOOD = "model: {name: mlp, width: 8}\ndata: {name: mnist1d}\ntrain: {steps: 2}\nrun: {plots: false}\n"


def _npz_bytes(**arrays) -> bytes:
    import io
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _planetoid(**changes) -> bytes:
    """A tiny valid Planetoid file (3 nodes, 2 classes) with `changes` (None: drop the key)."""
    arrays = {"features": np.packbits(np.eye(3, 8, dtype=np.uint8), axis=1), "num_features": np.int32(8),
              "labels": np.array([0, 1, 0], np.int32), "labeled": np.ones(3, bool),
              "senders": np.array([0, 1], np.int32), "receivers": np.array([1, 0], np.int32),
              "train_index": np.array([0, 1], np.int32), "val_index": np.array([2], np.int32),
              "test_index": np.array([2], np.int32)}
    arrays.update(changes)
    return _npz_bytes(**{k: v for k, v in arrays.items() if v is not None})


PAIRS = ["model.name=gru_seq2seq", "data.name=parallel_text"]   # the base's model and data, replaced


def overrides(*args, expect):
    return ([*BASE, *args], {}, expect)


def with_file(name, content, *args, expect, base=True):
    return ([*(BASE if base else []), *args], {name: content}, expect)


TYPES = [
    overrides("train.steps=true", expect="train.steps: expected int, got 'true'"),
    overrides("train.steps=on", expect="train.steps: expected int, got 'on'"),
    overrides("train.steps=yes", expect="expected int"),
    overrides("train.seed=010", expect="YAML 1.1 reads '010' as 8"),
    overrides("train.seed=1:20", expect="YAML 1.1 reads '1:20' as 80"),
    overrides("train.seed=0x10", expect="YAML 1.1 reads '0x10' as 16"),
    overrides("train.steps=2.5", expect="train.steps: expected int, got '2.5'"),
    overrides("train.steps='5'", expect="(a quoted string)"),
    overrides("train.steps=abc", expect="expected int"),
    overrides("train.steps=", expect="expected int"),
    overrides("train.steps=[1]", expect="expected int"),
    overrides("train.steps={a: 1}", expect="expected int"),
    overrides("train.steps=1e400", expect="train.steps: expected int"),
    overrides("optimizer.learning_rate=abc", expect="expected float"),
    overrides("optimizer.learning_rate=nan", expect="expected float"),
    overrides("optimizer.learning_rate=true", expect="expected float"),
    overrides("optimizer.learning_rate=1:20", expect="expected float"),
    overrides("run.plots=yes", expect="write true or false"),
    overrides("run.plots=1", expect="run.plots: expected bool"),
    overrides("run.plots=on", expect="write true or false"),
    overrides("train.precision=float16", expect="expected 'float32' | 'bfloat16'"),
    overrides("train.select=best", expect="train.select: expected"),
    overrides("model.norm=batch", expect="model.norm: expected"),
    overrides("model.activation=[relu]", expect="model.activation: expected str"),
    overrides("run.name=!!binary aGVsbG8=", expect="is not a plain value"),
    overrides("run.name=!!set {a}", expect="is not a plain value"),
    overrides("run.name=!!python/name:os.system", expect="is not a plain value"),
    overrides("optimizer.kwargs=[1, 2]", expect="optimizer.kwargs: expected dict"),
    overrides("mesh.coordinator_address=[1]", expect="expected str or null"),
    overrides("mesh.num_processes=2", expect="mesh.num_processes=2 needs mesh.coordinator_address"),
]

RANGES = [
    overrides("optimizer.learning_rate=.inf", expect="optimizer.learning_rate=inf: must be a finite number >= 0"),
    overrides("optimizer.learning_rate=-.inf", expect="must be a finite number >= 0"),
    overrides("optimizer.learning_rate=.nan", expect="must be a finite number >= 0"),
    overrides("optimizer.learning_rate=-0.1", expect="optimizer.learning_rate=-0.1: must be"),
    overrides("optimizer.end_learning_rate=-1", expect="optimizer.end_learning_rate=-1.0: must be"),
    overrides("optimizer.clip_norm=-1", expect="optimizer.clip_norm=-1.0: must be a finite number > 0"),
    overrides("optimizer.clip_norm=0", expect="optimizer.clip_norm=0.0: must be a finite number > 0"),
    overrides("optimizer.weight_decay=-0.1", expect="optimizer.weight_decay=-0.1: must be"),
    overrides("optimizer.warmup_steps=-1", expect="optimizer.warmup_steps=-1: must be an integer >= 0"),
    overrides("optimizer.accumulate_steps=0", expect="optimizer.accumulate_steps=0: must be an integer >= 1"),
    overrides("optimizer.accumulate_steps=3", expect="must divide train.batch_size=100"),
    overrides("model.dropout_rate=1.5", expect="model.dropout_rate=1.5: must be a finite number >= 0 and < 1"),
    overrides("model.dropout_rate=-0.5", expect="model.dropout_rate=-0.5: must be"),
    overrides("model.dropout_rate=1", expect="model.dropout_rate=1.0: must be"),
    overrides("model.depth=-1", expect="model.depth=-1: must be an integer >= 0"),
    overrides("model.width=0", expect="model.width=0: must be an integer >= 1"),
    overrides("model.num_outputs=0", expect="model.num_outputs=0: must be"),
    overrides("train.steps=0", expect="train.steps=0: must be an integer >= 1"),
    overrides("train.steps=-5", expect="train.steps=-5: must be"),
    overrides("train.batch_size=0", expect="train.batch_size=0: must be"),
    overrides("train.eval_every=-1", expect="train.eval_every=-1: must be an integer >= 0"),
    overrides("train.checkpoint_every=-2", expect="train.checkpoint_every=-2: must be"),
    overrides("train.eval_batches=-1", expect="train.eval_batches=-1: must be"),
    overrides("train.eval_batch_size=0", expect="train.eval_batch_size=0: must be"),
    overrides("train.log_every=0", expect="train.log_every=0: must be"),
    overrides("train.keep_checkpoints=0", expect="train.keep_checkpoints=0: must be"),
    overrides("train.seed=-1", expect="train.seed=-1: must be an integer >= 0"),
    overrides("train.patience=-1", expect="train.patience=-1: must be"),
    overrides("train.max_bad_steps=0", expect="train.max_bad_steps=0: must be"),
    overrides("train.init_step=-1", "train.init_from=x", expect="train.init_step=-1: must be"),
    overrides("mesh.data=0", expect="mesh.data=0: must be an integer >= 1 (or -1)"),
    overrides("mesh.fsdp=0", expect="mesh.fsdp=0: must be"),
    overrides("mesh.process_id=-1", expect="mesh.process_id=-1: must be"),
    overrides("data.val_size=-1", expect="data.val_size=-1: must be"),
    overrides("data.train_size=0", expect="data.train_size=0: must be"),
    overrides("data.patch_size=0", expect="data.patch_size=0: must be"),
    overrides("data.label_map=[0, -1]", expect="data.label_map=-1: must be"),
]

FAMILIES = [  # each family's config through the same rules, and the datasets' generated-data fields
    overrides("model.name=cnn", "model.channels=[8, 0]", expect="model.channels=0: must be"),
    overrides("model.name=cnn", "model.kernel_sizes=[-3]", expect="model.kernel_sizes=-3: must be"),
    overrides("model.name=cnn", "model.padding=-1", expect="model.padding=-1: must be"),
    overrides("model.name=cnn", "model.pool_size=0", expect="model.pool_size=0: must be"),
    overrides("model.name=cnn", "model.norm=batch", "model.norm_momentum=1", expect="model.norm_momentum=1.0: must be"),
    overrides("model.name=lstm", "model.hidden_size=0", expect="model.hidden_size=0: must be"),
    overrides("model.name=gru", "model.num_layers=0", expect="model.num_layers=0: must be"),
    overrides("model.name=rnn", "model.unroll=0", expect="model.unroll=0: must be"),
    overrides("model.name=lstm", "model.remember_bias=.inf", expect="model.remember_bias=inf: must be a finite number"),
    overrides("model.name=transformer", "model.num_heads=0", expect="model.num_heads=0: must be"),
    overrides("model.name=transformer", "model.attention_dropout_rate=2", expect="attention_dropout_rate=2.0: must be"),
    overrides("model.name=transformer", "model.mlp_ratio=0", expect="model.mlp_ratio=0.0: must be a finite number > 0"),
    overrides("model.name=transformer", "model.rope_base=-1", expect="model.rope_base=-1.0: must be"),
    overrides("model.name=gpt", "data.name=text", "model.d_model=-8", expect="model.d_model=-8: must be"),
    overrides("model.name=gpt", "data.name=text", "model.context_length=0", expect="context_length=0: must be"),
    overrides("model.name=lstm_lm", "data.name=text", "model.embed_dim=0", expect="model.embed_dim=0: must be"),
    overrides("model.name=gcn", "data.name=karate", "model.hidden_sizes=[0]", expect="model.hidden_sizes=0: must be"),
    overrides("model.name=gat", "data.name=karate", "model.num_heads=0", expect="model.num_heads=0: must be"),
    overrides("model.name=gat", "data.name=karate", "model.negative_slope=.nan", expect="negative_slope=nan: must be"),
    overrides("model.name=gin", "data.name=karate", "model.mlp_depth=0", expect="model.mlp_depth=0: must be"),
    overrides("model.name=mpnn", "data.name=karate", "model.dropout_rate=1.1", expect="model.dropout_rate=1.1: must"),
    overrides("model.name=node", "data.name=spiral", "model.rtol=0", expect="model.rtol=0.0: must be"),
    overrides("model.name=node", "data.name=spiral", "model.dt0=-0.1", expect="model.dt0=-0.1: must be"),
    overrides("model.name=node", "data.name=spiral", "model.max_steps=0", expect="model.max_steps=0: must be"),
    overrides("model.name=odenet", "model.t1=-1", expect="model.t1=-1.0: must be"),
    overrides("model.name=cnf", "data.name=toy2d", "model.atol=-1e-5", expect="model.atol=-1e-05: must be"),
    overrides("data.name=text", "data.seq_len=0", expect="data.seq_len=0: must be an integer >= 1"),
    overrides("data.name=text", "data.val_fraction=0", expect="data.val_fraction=0.0: must be"),
    overrides("data.name=text", "data.val_fraction=1", expect="data.val_fraction=1.0: must be"),
    overrides("data.name=digits", "data.test_fraction=1.5", expect="data.test_fraction=1.5: must be"),
    overrides("data.name=digits", "data.split_seed=-3", expect="data.split_seed=-3: must be"),
    overrides("data.name=spiral", "data.num_points=0", expect="data.num_points=0: must be"),
    overrides("data.name=spiral", "data.t1=0", expect="data.t1=0.0: must be"),
    overrides("data.name=graph_cycles", "data.num_train=0", expect="data.num_train=0: must be"),
    overrides("data.name=graph_cycles", "data.max_cycles=-1", expect="data.max_cycles=-1: must be"),
    overrides("data.name=karate", "data.train_nodes=[-1]", expect="data.train_nodes=-1: must be"),
    overrides("data.name=toy2d", "data.num_test=0", expect="data.num_test=0: must be"),
]

STRUCTURE = [
    overrides("run.name=../../x", expect="a run name is one directory name inside run.dir"),
    overrides("run.name=a/b", expect="a run name is one directory name"),
    overrides("run.name=..", expect="a run name is one directory name"),
    overrides("trian.steps=1", expect="unknown section 'trian'; did you mean 'train'?"),
    overrides("train.stepz=1", expect="did you mean 'train.steps'?"),
    overrides("train", expect="is not key=value"),
    overrides("=3", expect="is not key=value"),
    overrides("train.steps.x=3", expect="steps is not a section"),
    overrides("optimizer.name=adamm", expect="unknown optax optimizer 'adamm'"),
    overrides("optimizer.kwargs.b3=0.9", expect="optax.adam takes no argument 'b3'"),
    overrides("optimizer.kwargs.b1=abc", expect="optimizer.kwargs: optax.adam(b1='abc') fails"),
    overrides("optimizer.name=sgd", "optimizer.kwargs.momentum=[1, 2]", expect="optimizer.kwargs: optax.sgd(momentum="),
    overrides("optimizer.schedule=warmup_cosine", expect="needs optimizer.warmup_steps > 0"),
    overrides("optimizer.freeze=([", expect="not a valid regular expression"),
    overrides("train.init_exclude=head", expect="need train.init_from"),
    overrides("train.patience=3", expect="train.patience needs a validation metric"),
    overrides("model.name=lstmm", expect="unknown model 'lstmm'"),
    overrides("data.name=mnist2d", expect="unknown dataset 'mnist2d'"),
    overrides("train.batch_size=5000", expect="larger than the training set"),
    overrides("train.init_from={tmp}/nothing", expect="not a run directory"),
    (["--resume", "{tmp}/nothing"], {}, "not a run directory"),
    (["{tmp}/c.yaml", "--resume", "{tmp}/x"], {"c.yaml": GOOD}, "not both"),
    (["{tmp}/none.yaml"], {}, "config file '{tmp}/none.yaml' not found"),
]

FILES = [
    with_file("c.yaml", GOOD + "train: {steps: 5}\n", "{tmp}/c.yaml", base=False,
              expect="duplicate key 'train' at lines 3 and 5"),
    with_file("c.yaml", "model: {name: mlp, width: 8, width: 9}\ndata: {name: mnist1d}\n", "{tmp}/c.yaml",
              base=False, expect="duplicate key 'width' at lines 1 and 1"),
    with_file("c.yaml", "model:\n  name: mlp\n  name: cnn\ndata: {name: mnist1d}\n", "{tmp}/c.yaml", base=False,
              expect="duplicate key 'name' at lines 2 and 3"),
    with_file("c.yaml", "model: [", "{tmp}/c.yaml", base=False, expect="not valid YAML"),
    with_file("c.yaml", "- 1\n- 2\n", "{tmp}/c.yaml", base=False, expect="expected a mapping with sections"),
    with_file("c.yaml", "model: 3\ndata: {name: mnist1d}\n", "{tmp}/c.yaml", base=False, expect="model.name is required"),
    with_file("c.yaml", GOOD + "train: 5\n", "{tmp}/c.yaml", base=False, expect="duplicate key 'train'"),
    with_file("c.yaml", "model: {name: mlp}\ndata: {name: mnist1d}\ntrain: 5\n", "{tmp}/c.yaml", base=False,
              expect="train: expected a mapping"),
    with_file("c.yaml", b"\xff\xfe\x00garbage", "{tmp}/c.yaml", base=False, expect="not UTF-8 text"),
    with_file("c.yaml", "a: " + "[" * 100 + "]" * 100, "{tmp}/c.yaml", base=False, expect="nested deeper than"),
    with_file("c.yaml", "a: &a [1]\n" + "".join(f"b{i}: *a\n" for i in range(100)), "{tmp}/c.yaml", base=False,
              expect="more than 64 aliases"),
    with_file("c.yaml", "x: " + "1" * (2 << 20) + "\n", "{tmp}/c.yaml", base=False, expect="larger than 1 MiB"),
    with_file("c.yaml", GOOD + "optimizer: !!python/object/apply:os.system ['true']\n", "{tmp}/c.yaml", base=False,
              expect="is not a plain value"),
    with_file("t.txt", "", "data.name=text", "data.path={tmp}/t.txt", expect="the text (0 characters) is too short"),
    with_file("t.txt", b"\xff\xfe\xfd", "data.name=text", "data.path={tmp}/t.txt", expect="not UTF-16 text"),
    with_file("t.txt", b"ok\n\xff\xfd", "data.name=text", "data.path={tmp}/t.txt", expect="t.txt line 2: not UTF-8 text"),
    with_file("t.txt", "short text", "data.name=text", "data.path={tmp}/t.txt", expect="is too short for data.seq_len"),
    with_file("t.txt", "x", "data.name=text", "data.path={tmp}/nothing.txt", expect="no such file"),
    with_file("g.npz", b"", "model.name=gcn", "data.name=planetoid", "data.path={tmp}/g.npz",
              expect="not a Planetoid .npz file"),
    with_file("g.npz", "plain text, not an archive", "model.name=gcn", "data.name=planetoid",
              "data.path={tmp}/g.npz", expect="not a Planetoid .npz file"),
    with_file("g.npz", _npz_bytes(x=np.zeros(3)), "model.name=gcn", "data.name=planetoid", "data.path={tmp}/g.npz",
              expect="has no array 'features'"),
    with_file("g.npz", _npz_bytes(features=np.array([object()], dtype=object)), "model.name=gcn",
              "data.name=planetoid", "data.path={tmp}/g.npz", expect="not a Planetoid .npz file"),
    with_file("g.npz", _planetoid(senders=np.array([0, 7], np.int32)), "model.name=gcn", "data.name=planetoid",
              "data.path={tmp}/g.npz", expect="senders"),
    with_file("g.npz", _planetoid(test_index=np.array([3], np.int32)), "model.name=gcn", "data.name=planetoid",
              "data.path={tmp}/g.npz", expect="test_index"),
    with_file("g.npz", _planetoid(labels=np.array([0, 1], np.int32)), "model.name=gcn", "data.name=planetoid",
              "data.path={tmp}/g.npz", expect="labels"),
    with_file("g.npz", _planetoid(train_index=None), "model.name=gcn", "data.name=planetoid",
              "data.path={tmp}/g.npz", expect="has no array 'train_index'"),
    with_file("p.tsv", "one\teins\ntwo zwei\n", *PAIRS, "data.path={tmp}/p.tsv", expect="p.tsv line 2: no tab"),
    with_file("p.tsv", b"one\teins\nf\xfcnf\tfive\n", *PAIRS, "data.path={tmp}/p.tsv", expect="p.tsv line 2: not UTF-8"),
    with_file("s.txt", "one\ntwo\n", *PAIRS, "data.path={tmp}/s.txt", "data.target_path={tmp}/s.txt.missing",
              expect="data.target_path="),
    with_file("p.tsv", "".join(f"{i}\t{i}\n" for i in range(5)), *PAIRS, "data.path={tmp}/p.tsv",
              expect="5 sentence pairs with data.test_fraction=0.1"),
    with_file("runs", "a file where run.dir should be", "run.dir={tmp}/runs",
              expect="cannot create mnist1d_cnn there (Not a directory)"),
]

# ----------------------------------------------------------------------------- the user's data files
# Issue #30's five classes of what went wrong with real files; each case here is refused in one
# line naming the file (accepted files, class 5, are checked in tests/test_data_arrays.py, predict
# and plugins in test_data_arrays.py and test_data_plugin.py).
ROWS = [f"{i % 7 * 0.5},{i % 3 - 1.25},{i % 2}" for i in range(40)]


def table(name, header, rows, *args, expect, encoding="utf-8", ending="\n"):
    """A case training an MLP on the CSV `header` + `rows` saved as `name`."""
    content = (ending.join([header, *rows]) + ending).encode(encoding)
    return with_file(name, content, "data.name=array", "data.path={tmp}/" + name, *args, expect=expect)


def array_file(name, content, *args, expect):
    return with_file(name, content, "data.name=array", "data.path={tmp}/" + name, *args, expect=expect)


def _npy_claiming(shape) -> bytes:
    """An .npy whose header claims `shape` but holds 12 float64s."""
    import io
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return head.getvalue() + np.zeros(12).tobytes()


def _npz_claiming(shape) -> bytes:
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", _npy_claiming(shape))
        z.writestr("y.npy", _npz_member(np.arange(4) % 2))
    return buf.getvalue()


def _npz_member(a) -> bytes:
    import io
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


X, Y = np.linspace(-1, 1, 120).reshape(40, 3), np.arange(40) % 2
GOOD_NPZ = _npz_bytes(x=X, y=Y)

SILENT = [  # 1. trained silently on something wrong, exit 0
    table("t.csv", "a,b,label", ROWS[:-1] + ["0.5,0.25,"], expect="t.csv line 41, column 'label': the label is empty"),
    table("t.csv", "a,b,label", ROWS[:-1] + ["0.5,0.25,NA"],
          expect="t.csv line 41, column 'label': the label 'NA' is text, but the other labels are numbers"),
    table("t.csv", "a,b,label", ["NA,1,a"] * 3 + ["1,2,3"],
          expect="line 5, column 'label': the label '3' is a number, but the other labels are names"),
    table("t.csv", "a,b,label", [r[:-1] + "1" for r in ROWS], expect="every label is 1, one class"),
    table("t.csv", "a,b,label", [r[:-1] + "tulip" for r in ROWS], expect="every label is 'tulip', one class"),
    table("t.csv", "a,a,label", ROWS, expect="t.csv: the header names column 'a' twice (columns 1 and 2)"),
    table("t.csv", "a,label,label", ROWS, expect="names column 'label' twice"),
    table("t.csv", "a,b,label", [r[:-1] + str(10**9 * (i % 2)) for i, r in enumerate(ROWS)],
          expect="class ids up to 1000000000 would make a 1000000001-way classifier for 40 rows"),
    table("t.csv", "a,b,label", ROWS[:-1] + ["1e39,0,1"], expect="t.csv line 41, column 'a': '1e39' is not a finite float32"),
    array_file("x.npz", _npz_bytes(x=np.where(np.eye(40, 3) > 0, 1e300, X), y=Y),
               expect="x.npz: inputs (x) row 0 has a NaN, infinite or out-of-float32-range value"),
    array_file("x.npz", _npz_bytes(x=np.full((40, 3), 2**40, np.int64), y=Y),
               expect="x.npz: inputs (x) row 0 has an integer outside int32"),
    array_file("x.npz", _npz_bytes(x=X, y=np.where(np.arange(40) == 3, 1e300, X[:, 0])),
               expect="x.npz: labels row 3 has a NaN, infinite or out-of-float32-range value"),
    array_file("x.npz", GOOD_NPZ, "model.num_outputs=1", expect="train labels row 1 is class 1, but the model has 1 outputs"),
    with_file("x.txt", "some text", "model.name=lstm_lm", "data.name=text", "data.path=",
              expect="override data.path= is empty (an unset shell variable?)"),
    with_file("x.txt", "some text", "model.name=lstm_lm", "data.name=text", "data.path=''",
              expect="data.path is empty (an unset shell variable?)"),
    array_file("x.npz", GOOD_NPZ, "data.path=''", expect="data.path is empty (an unset shell variable?)"),
    array_file("x.npz", GOOD_NPZ, "data.y_path=", expect="override data.y_path= is empty"),
    with_file("x.npz", GOOD_NPZ, "train.init_from=", expect="override train.init_from= is empty"),
]

COMMANDS = [  # 3. a command run from a config: refused before anything is called
    overrides("data.name=os:system", "data.command=touch {tmp}/ran",
              expect="data.name='os:system': 'os' is a standard-library module, not a dataset; zoo calls only"),
    overrides("data.name=subprocess:run", "data.args=[touch, x]", expect="'subprocess' is a standard-library module"),
    overrides("data.name=builtins:eval", expect="'builtins' is a standard-library module"),
    overrides("data.name=zoo.data.tables:read_table", expect="'read_table' is not marked as a zoo dataset"),
]

TRACEBACKS = [  # 4. once a traceback, now one line
    array_file("x.npz", b"", expect="x.npz: an empty file (0 bytes)"),
    array_file("x.npz", GOOD_NPZ[:len(GOOD_NPZ) // 2], expect="x.npz: not a readable .npz file"),
    array_file("x.npz", "a,b,label\n1,2,0\n", expect="x.npz: not an .npz file (it holds text (a CSV?))"),
    array_file("x.npy", GOOD_NPZ, "data.y_path={tmp}/x.npy", expect="x.npy: not an .npy file (it holds a zip archive"),
    array_file("x.npy", _npy_claiming((10**12, 3)), "data.y_path={tmp}/x.npy",
               expect="x.npy: the header of the array claims shape [1000000000000, 3]"),
    array_file("x.npy", _npy_claiming((5, 3)), "data.y_path={tmp}/x.npy",
               expect="claims shape [5, 3] (120 bytes) but only 96 are stored: the file is truncated"),
    array_file("x.npz", _npz_claiming((10**12, 3)), expect="x.npz: the header of array 'x' claims shape [1000000000000, 3]"),
    array_file("x.npz", _npz_claiming((7, 3)), expect="the header of array 'x' claims shape [7, 3] (168 bytes) but only 96"),
    table("t.csv", "a,b,label", [r[:-1] + "é" for r in ROWS], encoding="latin-1",
          expect="t.csv line 2: not UTF-8 text (byte 0xe9, which Latin-1 reads as 'é'); save it as UTF-8"),
    table("t.csv", "a,b,label", ROWS + ['"' + "1" * 200_000 + '",1,0'],
          expect="t.csv line 42: field larger than field limit"),
    table("t.csv", "a,b,label", ["1,2,0", "3,4,1"], "data.test_fraction=0.2",
          expect="t.csv: data.test_fraction=0.2 of its 2 rows leaves an empty split"),
    table("t.csv", "a,b,label", [], expect="t.csv: no rows"),
    array_file("x.npz", _npz_bytes(x=np.zeros((0, 3)), y=np.zeros(0, np.int64)), expect="x.npz: no rows"),
    array_file("x.npz", _npz_bytes(x=np.zeros((40, 4, 3, 2), np.float32), y=Y), "model.name=gru", "train.batch_size=8",
               expect="model 'gru' cannot take array inputs of shape [8, 4, 3, 2]: a recurrent network takes"),
]

# A model and data that do not fit: named in one line before anything is built, as the models
# that fit (or the data the model takes), not a failure inside the model.
MISMATCHES = [
    overrides("data.name=karate", expect="model 'mlp' takes arrays of one shape, but data 'karate' gives graphs: train a "
              "model that takes them (model.name=egnn or gat or gcn or gin or mpnn)"),
    overrides("data.name=digit_sets", expect="gives examples of unequal lengths (padded, with their lengths): train a "
              "model that takes them (model.name=deepsets or gru or lstm or rnn)"),
    overrides("data.name=irregular_periodic", expect="gives irregular series {t, values, observed}: train a model that "
              "takes them (model.name=gru_gaps or latent_ode or ode_rnn or rnn_vae)"),
    overrides("data.name=text", expect="model 'mlp' is not a language model, and data 'text' trains one: use "
              "model.name=gpt or gru_lm or lstm_lm or rnn_lm"),
    overrides("data.name=translation", expect="model 'mlp' is not a translation model, and data 'translation' trains "
              "one: use model.name=gru_seq2seq or lstm_seq2seq or seq2seq"),
    overrides("model.name=gpt", expect="model 'gpt' is a language model, and data 'mnist1d' trains classification: "
              "give it data.name=text"),
    overrides("model.name=gcn", expect="a graph network takes graphs, a GraphsTuple (data.name=karate"),
]

CASES = TYPES + RANGES + FAMILIES + STRUCTURE + FILES + SILENT + COMMANDS + TRACEBACKS + MISMATCHES
