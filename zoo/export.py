"""Take a trained model out: a serialized `jax.export` artifact (StableHLO) that runs without zoo.

    blob, manifest = zoo.export.export_run(run)        # bytes of exported.serialize(), a dict
    zoo.export.write(run, "model.jaxexport")           # the artifact, model.jaxexport.json beside it
    exported = zoo.export.load("model.jaxexport")      # = jax.export.deserialize(bytes)
    logits = exported.call(x)                          # any process with jax and numpy only

What the artifact computes is `model.apply(params, x)` (train=False, no dropout) in the run's
precision, outputs as float32 (of a translation model: its greedy decode, below); its manifest
(a JSON file beside it) names the inputs with their shapes and dtypes, the output, the model,
its config, the class names or vocabulary, the preprocessing, the jax version and the training
step.

Shapes. The batch axis is symbolic ("b": any size, one artifact) where the model allows it; the
sequence axis of sequence models (ModelEntry.sequence) is tried symbolic too ("t", unbounded, then
"t <= T", the trained length, as learned position tables require). Each choice is tried in
turn and the first that exports is used; the manifest's `symbolic_attempts_failed` says what was tried
and why it failed, and a model that takes no symbolic dimension is exported at the fixed shape
of the run's evaluation batch (the ODE models: diffrax needs concrete shapes).

Params are embedded as constants by default. With `params_as_inputs`, the artifact takes
`(params, x)`, params a flat dict {"blocks/0/attention/kernel": array, ...}, and `write` saves
them beside the artifact as FILE.npz with those keys: `exported.call(dict(np.load(npz)), x)`.

Preprocessing the run stored (`dataset.preprocessing`) travels with the model: standardisation
({"standardize": {"mean", "std"}}) is applied inside the exported function, so the artifact
takes raw features, as `zoo predict` does.

Graph models take a padded GraphsTuple, which has no meaning outside zoo: the artifact takes
its array fields as a dict of named inputs ({"nodes", "senders", "receivers", "n_node",
"n_edge"}, plus "edges"/"globals" where the model has them) at the fixed padding sizes of the
run's evaluation batch; pad a graph to those sizes as zoo.graphs.pad_graphs does (one padding
graph owning the padding nodes and edges, then empty graphs).

Translation models (ModelEntry.translate: seq2seq, gru_seq2seq, lstm_seq2seq) export their whole
greedy decode, not `model.apply`: apply is teacher-forced logits of a known target, which a
server does not have. The artifact takes source ids [b, S] int32 (b symbolic; S the trained
source length: the text's characters as vocabulary ids, EOS, then PAD) and returns output ids
[b, L] int32 (L = model.max_decode_length; EOS, then PAD, after each text), equal to zoo's own
greedy `translate`; the manifest carries the vocabulary and the special ids to encode and
detokenise without zoo. One program and not "the encoder plus one decoding step": the decode's
lax.while_loop, and with it the Transformer's key/value cache, lives inside the artifact, so a
server calls it once per batch and plumbs no cache, memory or loop of its own; what it gives up
is beam search, which zoo predict keeps. Params stay in the run's dtype, as zoo's
translate uses them.

ODE models (odenet, node, cnf) carry their solver inside the graph: the artifact is the whole
solve. The number of function evaluations (a training diagnostic) is dropped, and a solver
failure (max_steps reached) gives NaN outputs instead of an error, because the check that
raises it calls back into Python, which a serialized artifact cannot hold.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from zoo import experiment as ex
from zoo import models
from zoo.errors import ConfigError
from zoo.experiment import Run
from zoo.graphs import GraphsTuple
from zoo.models.node import SolverConfig
from zoo.optim import path_name

OUTPUTS = {"classification": "logits [..., K]: softmax gives the class probabilities",
           "language_model": "next-token logits [B, T, V]",
           "regression": "the model's outputs", "integer_regression": "the predicted integers, unrounded [B, 1]",
           "density": "log p(x) per example [B] (nats)",
           "translation": "greedy output ids [B, L] int32: vocab ids of the translation, EOS (2), then PAD (0)"}
# what a symbolic dimension that does not fit a model raises while it is traced
SHAPE_ERRORS = (TypeError, ValueError, jax.errors.InconclusiveDimensionOperation)


# ----------------------------------------------------------------------------- inputs
def is_array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, jax.Array))


def translates(run: Run) -> bool:
    """Whether the run's model translates (its registry entry has `translate`): its artifact is
    the greedy decode of source ids, not `model.apply`."""
    return models.entry(run.cfg.model_name).translate is not None


def example_inputs(run: Run) -> Any:
    """The input of the exported function in the run's first evaluation batch (host arrays; of a
    translation model its source ids): its shapes are the fixed shapes of an export that can
    take no symbolic dimension."""
    x = next(iter(run.exp.dataset.eval_batches(run.cfg.train.eval_batch_size)))["x"]
    return x["source"] if translates(run) else x


def named_inputs(x: Any) -> dict[str, np.ndarray]:
    """The leaves of a model input by path name ({"x": ..., "lengths": ...}; a GraphsTuple's
    array fields); a bare array is {"x": x}."""
    if is_array(x):
        return {"x": np.asarray(x)}
    return {path_name(p): np.asarray(a) for p, a in jax.tree_util.tree_flatten_with_path(x)[0]}


def param_arrays(run: Run) -> dict[str, np.ndarray]:
    """The run's params as host arrays by path name, the keys of FILE.npz."""
    return {path_name(p): np.asarray(a) for p, a in jax.tree_util.tree_flatten_with_path(jax.device_get(run.params))[0]}


def attempts(run: Run, x: Any, symbolic_batch: bool) -> list[tuple[str, list[str]]]:
    """(symbolic dims, constraints) to try in order; ("", []) is the fixed shape."""
    if not symbolic_batch or isinstance(x, GraphsTuple):
        return [("", [])]
    tries = []
    if models.entry(run.cfg.model_name).sequence:  # axis 1 a sequence of any length: a symbolic "t"
        length = max(a.shape[1] for a in jax.tree.leaves(x) if a.ndim > 1)   # {"x", "lengths"}: x's
        tries += [("b, t", []), ("b, t", [f"t <= {length}"])]
    return [*tries, ("b", []), ("", [])]


def input_specs(inputs: dict[str, np.ndarray], dims: str, constraints: list[str]) -> dict[str, jax.ShapeDtypeStruct]:
    """ShapeDtypeStructs of the named inputs with their leading axes replaced by the symbols
    of `dims` (one scope: every input shares "b" and "t")."""
    symbols = jax.export.symbolic_shape(dims, constraints=constraints) if dims else ()

    def spec(a):
        lead = symbols[:a.ndim]
        return jax.ShapeDtypeStruct((*lead, *a.shape[len(lead):]), a.dtype)
    return {name: spec(a) for name, a in inputs.items()}


# ----------------------------------------------------------------------------- the function
def standardizer(run: Run, x: Any) -> Callable[[Any], Any]:
    """x -> (x - mean) / std when the run stored a standardisation, else the identity."""
    stored = getattr(run.exp.dataset, "preprocessing", {}).get("standardize")
    if stored is None:
        return lambda inputs: inputs
    if not is_array(x):
        raise ConfigError(f"{run.run_dir}: standardisation of {type(x).__name__} inputs cannot be exported; "
                          "export a run whose inputs are one array")
    mean, std = (np.asarray(stored[k], np.float32) for k in ("mean", "std"))
    return lambda inputs: (inputs - mean) / std


def params_reader(run: Run, params_as_inputs: bool) -> Callable[[tuple], Any]:
    """args of the exported function -> the params pytree: the run's, embedded, or args[0] (by
    path name) with params_as_inputs."""
    embedded = jax.device_get(run.params)
    if not params_as_inputs:
        return lambda args: embedded
    params_def, param_names = jax.tree.structure(embedded), list(param_arrays(run))
    return lambda args: jax.tree.unflatten(params_def, [args[0][n] for n in param_names])


def forward(run: Run, x: Any, params_as_inputs: bool) -> Callable:
    """The exported function: f(x) or f(params by path name, x) -> outputs float32, computed in
    the run's precision; x is one array, or a dict of named inputs (`named_inputs`)."""
    if translates(run):
        return translator(run, params_as_inputs)
    exp, treedef, names = run.exp, jax.tree.structure(x), list(named_inputs(x))
    params_of, preprocess = params_reader(run, params_as_inputs), standardizer(run, x)

    def model_input(arg) -> Any:  # dicts come back with sorted keys: take leaves by name
        return preprocess(arg if is_array(x) else jax.tree.unflatten(treedef, [arg[n] for n in names]))

    def f(*args):
        dtype = ex.compute_dtype(exp)
        y = exp.model.apply(ex.cast(params_of(args), dtype), ex.cast(model_input(args[-1]), dtype))
        return y.astype(jnp.float32)
    return f


def translator(run: Run, params_as_inputs: bool) -> Callable:
    """The exported function of a translation model: f(source) or f(params by path name, source),
    source ids [B, S] int32 -> greedy output ids [B, L] int32, zoo's own greedy `translate`
    (one lax.while_loop, the Transformer's key/value cache inside it)."""
    name, cfg = run.cfg.model_name, run.cfg.model
    translate, params_of = models.entry(name).translate, params_reader(run, params_as_inputs)

    def f(*args):
        return translate(name, cfg, params_of(args), args[-1], beam_size=1)
    return f


@contextlib.contextmanager
def solver_failures_as_nan(run: Run):
    """While an ODE model is traced, diffrax's runtime checks (equinox.error_if) give NaN instead
    of raising: raising goes through a host callback, which jax.export cannot serialise. This is
    equinox's own setting EQX_ON_ERROR=nan, which it reads from its module as checks are traced;
    jax's trace caches are cleared on the way in and out, so neither mode reuses the other's
    traces (training in the same process keeps raising)."""
    if not isinstance(run.cfg.model, SolverConfig):
        yield
        return
    import equinox._errors as errors
    saved, errors.EQX_ON_ERROR = errors.EQX_ON_ERROR, "nan"
    jax.clear_caches()
    try:
        yield
    finally:
        errors.EQX_ON_ERROR = saved
        jax.clear_caches()


# ----------------------------------------------------------------------------- the manifest
def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(u) for k, u in v.items()}
    if isinstance(v, (list, tuple, np.ndarray, np.generic, jax.Array)):
        return np.asarray(v).tolist() if not isinstance(v, (list, tuple)) else [_jsonable(u) for u in v]
    return v


def _input_entries(exported: jax.export.Exported, bare: str) -> list[dict]:
    """[{"name", "shape", "dtype"}] of the model inputs, symbolic dimensions by name; a bare
    array input is named `bare`."""
    args, _ = jax.tree.unflatten(exported.in_tree, exported.in_avals)
    x = args[-1]
    named = {bare: x} if not isinstance(x, dict) else x
    return [{"name": n, "shape": _dims(a.shape), "dtype": str(a.dtype)} for n, a in named.items()]


def _notes(run: Run, x: Any) -> list[str]:
    notes = []
    if isinstance(run.cfg.model, SolverConfig):
        notes.append(f"the ODE solve ({run.cfg.model.solver}) is inside the artifact; the number of function "
                     "evaluations is dropped; a solver failure (max_steps) gives NaN outputs")
    if translates(run):
        notes.extend(translation_notes(run))
    if isinstance(x, GraphsTuple):
        notes.append("inputs are the arrays of one padded GraphsTuple at these fixed sizes: pad graphs as "
                     "zoo.graphs.pad_graphs does (a padding graph owns the padding nodes and edges)")
    return notes


def translation_notes(run: Run) -> list[str]:
    """How to encode a source text and read the output ids without zoo."""
    length = run.exp.dataset.preprocessing["source_length"]
    return ["the whole greedy decode is inside the artifact (one lax.while_loop, the decoder's cache inside it): "
            "one call per batch of sources; beam search is zoo predict's",
            f"source: each character's index in vocab (unknown characters: 3 <unk>), then EOS (2), padded with "
            f"PAD (0) to {length}; texts longer than {length - 1} characters do not fit",
            "output: vocab[i] for each id up to the first EOS (2) or PAD (0); ids 0-3 are <pad> <s> </s> <unk>"]


def manifest(run: Run, exported: jax.export.Exported, x: Any, symbolic: str, failed: list[dict],
             params_as_inputs: bool) -> dict:
    """What a user of the artifact needs to call it and read its outputs (FILE.json)."""
    dataset = run.exp.dataset
    preprocessing = getattr(dataset, "preprocessing", {})
    bare = "source" if translates(run) else "x"
    return {
        "model": run.cfg.model_name, "step": run.step, "jax_version": jax.__version__,
        "platforms": list(exported.platforms), "task": dataset.task,
        "call": f"exported.call(params, {bare})" if params_as_inputs else f"exported.call({bare})",
        "params": "inputs (FILE.npz, keys by path)" if params_as_inputs else "embedded",
        "inputs": _input_entries(exported, bare),
        "output": {"shape": _dims(exported.out_avals[0].shape), "dtype": str(exported.out_avals[0].dtype),
                   "meaning": OUTPUTS.get(dataset.task, "the model's outputs")},
        "symbolic_dims": symbolic, "symbolic_attempts_failed": failed,
        "preprocessing": _jsonable(preprocessing),
        "preprocessing_inside": ["standardize"] if "standardize" in preprocessing else [],
        "class_names": _jsonable(getattr(dataset, "class_names", None) or preprocessing.get("class_names")),
        "vocab": getattr(dataset, "vocab", None) or None,
        "notes": _notes(run, x), "config": _jsonable(run.cfg.to_dict()),
    }


# ----------------------------------------------------------------------------- export
def _dims(shape) -> list:
    """A shape for JSON: ints, and symbolic dimensions by name ("b", "t")."""
    return [d if isinstance(d, int) else str(d) for d in shape]


def _one_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]


def _trace(run: Run, f: Callable, specs: list) -> jax.export.Exported:
    with solver_failures_as_nan(run):
        return jax.export.export(jax.jit(f))(*specs)


def _first_that_exports(run: Run, x: Any, f: Callable, params_spec, symbolic_batch: bool):
    """(Exported, the symbolic dims used, [{"symbolic", "error"}] of the attempts that failed)."""
    inputs, failed = named_inputs(x), []
    for dims, constraints in attempts(run, x, symbolic_batch):
        specs = input_specs(inputs, dims, constraints)
        arg = specs["x"] if is_array(x) else specs
        try:
            used = ", ".join([dims, *constraints]) or "none: the fixed shape of the run's evaluation batch"
            return _trace(run, f, [arg] if params_spec is None else [params_spec, arg]), used, failed
        except SHAPE_ERRORS as e:
            if not dims:  # the fixed shape of the run's own batches must export
                raise
            failed.append({"symbolic": ", ".join([dims, *constraints]), "error": _one_line(e)})
    raise AssertionError("attempts() always ends with the fixed shape")


def export_run(run: Run, *, params_as_inputs: bool = False, symbolic_batch: bool = True) -> tuple[bytes, dict]:
    """(the serialized artifact, its manifest) of a trained run; see the module docstring."""
    import importlib.util
    if importlib.util.find_spec("flatbuffers") is None:
        raise ConfigError("exporting needs the flatbuffers package (jax.export's file format): pip install flatbuffers")
    x = example_inputs(run)
    params_spec = ({n: jax.ShapeDtypeStruct(a.shape, a.dtype) for n, a in param_arrays(run).items()}
                   if params_as_inputs else None)
    exported, used, failed = _first_that_exports(run, x, forward(run, x, params_as_inputs), params_spec, symbolic_batch)
    return bytes(exported.serialize()), manifest(run, exported, x, used, failed, params_as_inputs)


def default_path(run: Run) -> Path:
    return run.run_dir / "export" / "model.jaxexport"


def write(run: Run, path: str | Path | None = None, *, params_as_inputs: bool = False,
          symbolic_batch: bool = True) -> dict[str, Path]:
    """Export `run` to `path` (default RUN/export/model.jaxexport) with its manifest PATH.json
    (and PATH.npz, the params, with params_as_inputs). Everything is exported before anything
    is written, and each file appears whole (os.replace) or not at all. Returns the paths."""
    path = Path(path) if path is not None else default_path(run)
    if path.is_dir():
        raise ConfigError(f"--output {path} is a directory; give a file name, e.g. {path / 'model.jaxexport'}")
    blob, info = export_run(run, params_as_inputs=params_as_inputs, symbolic_batch=symbolic_batch)
    files = {"artifact": (path, blob)}
    if params_as_inputs:
        files["params"] = (path.with_name(path.name + ".npz"), _npz(param_arrays(run)))
        info["params_file"] = files["params"][0].name
    files["manifest"] = (path.with_name(path.name + ".json"), (json.dumps(info, indent=2) + "\n").encode())
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, data in files.values():
        target.with_name(f".{target.name}.tmp").write_bytes(data)
    for target, _ in files.values():
        os.replace(target.with_name(f".{target.name}.tmp"), target)
    return {role: target for role, (target, _) in files.items()}


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    import io
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def load(path: str | Path) -> jax.export.Exported:
    """The artifact at `path`, ready to `.call`: jax.export.deserialize of its bytes. (Without
    zoo: `jax.export.deserialize(open(path, "rb").read())`.)"""
    return jax.export.deserialize(bytearray(Path(path).read_bytes()))
