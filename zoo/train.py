"""The trainer: `fit(cfg)` trains any registered model on any registered dataset with optax.

The train state is one pytree, {"params", "opt_state", "step", "key"}; `train_step(state,
batch) -> (state, metrics)` is jitted once with the state donated and laid out on the mesh
(zoo.mesh). Batches are a pure function of (seed, step), so a checkpoint of the state is all a
resumed run needs to continue bit for bit where it stopped.
"""
from __future__ import annotations

import dataclasses
import itertools
import signal
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from zoo import checkpoint, mesh as meshlib, optim, rundir
from zoo.config import Config, ConfigError
from zoo.data import Dataset, entry
from zoo.models import Model, build
from zoo.selection import Best
from zoo.tasks import TASKS, summarize


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written at the step boundary."""

    def __init__(self, message: str, signum: int, run_dir: str):
        super().__init__(message)
        self.signum, self.run_dir = signum, run_dir


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Everything a run needs, built and validated from a Config before anything compiles."""
    cfg: Config
    dataset: Dataset
    model: Model
    task: Callable
    tx: optax.GradientTransformation
    lr: optax.Schedule
    mesh: jax.sharding.Mesh


# ----------------------------------------------------------------------------- setup
def load_dataset(cfg: Config) -> Dataset:
    try:
        return entry(cfg.data_name).load(cfg.data)
    except FileNotFoundError as e:
        raise ConfigError(str(e).strip("'\"")) from None
    except ValueError as e:
        raise ConfigError(f"data: {e}") from None


def fill_model_defaults(model_cfg: Any, defaults: dict) -> Any:
    """Set output sizes (num_outputs, vocab_size, ...) the config left as None from the dataset."""
    names = {f.name for f in dataclasses.fields(model_cfg)}
    fill = {k: v for k, v in defaults.items() if k in names and getattr(model_cfg, k) is None}
    return dataclasses.replace(model_cfg, **fill)


def setup(cfg: Config) -> Experiment:
    meshlib.initialize_distributed(cfg.mesh)
    dataset = load_dataset(cfg)
    cfg = cfg.replace(model=fill_model_defaults(cfg.model, dataset.model_defaults))
    try:
        model = build(cfg.model_name, cfg.model)
    except ValueError as e:
        raise ConfigError(f"model: {e}") from None
    mesh = meshlib.make_mesh(cfg.mesh)
    if dataset.shardable:
        meshlib.check_batch(mesh, cfg.train.batch_size // cfg.optimizer.accumulate_steps,
                            "train.batch_size / optimizer.accumulate_steps")
        meshlib.check_batch(mesh, cfg.train.eval_batch_size, "train.eval_batch_size")
    if cfg.train.select != "last" and not dataset.has_validation():
        raise ConfigError(f"train.select={cfg.train.select} needs a validation split, and data "
                          f"{cfg.data_name!r} has none; use train.select=last")
    tx, lr = optim.build(cfg.optimizer, cfg.train.steps)
    return Experiment(cfg, dataset, model, TASKS[dataset.task], tx, lr, mesh)


def shard(exp: Experiment) -> tuple[int, int]:
    """This process's share of each batch."""
    if not exp.dataset.shardable:
        return (0, 1)
    return (jax.process_index(), jax.process_count())


def train_batch(exp: Experiment, step: int) -> dict:
    t = exp.cfg.train
    local = exp.dataset.train_batch(t.seed, step, t.batch_size, shard(exp))
    return meshlib.global_batch(local, meshlib.batch_sharding(exp.mesh, exp.dataset.shardable))


def init_state(exp: Experiment) -> tuple[dict, Any]:
    """Fresh state and its shardings. Bad model/data shape combinations fail here, traced
    abstractly (eval_shape) before anything compiles."""
    init_key, train_key = jax.random.split(jax.random.PRNGKey(exp.cfg.train.seed))
    try:
        x = train_batch(exp, 0)["x"]
    except ValueError as e:
        raise ConfigError(f"data: {e}") from None

    def make(key):
        params = exp.model.init(key, x)
        return {"params": params, "opt_state": exp.tx.init(params),
                "step": jnp.zeros((), jnp.int32), "key": train_key}

    try:
        shapes = jax.eval_shape(make, init_key)
    except (TypeError, ValueError) as e:
        shape = jax.tree.map(lambda a: list(a.shape), x)
        msg = str(e).strip().splitlines()[0]
        raise ConfigError(f"model {exp.cfg.model_name!r} cannot take {exp.cfg.data_name} inputs of shape "
                          f"{shape}: {msg}") from None
    shardings = meshlib.state_shardings(exp.mesh, shapes)
    return jax.jit(make, out_shardings=shardings)(init_key), shardings


# ----------------------------------------------------------------------------- steps
def _compute_dtype(exp: Experiment):
    return jnp.bfloat16 if exp.cfg.train.precision == "bfloat16" else jnp.float32


def _cast(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def forward(exp: Experiment, params, batch: dict, key, train: bool) -> tuple[dict, dict]:
    """Metric sums and model stats of one batch, computed in the configured precision."""
    dtype = _compute_dtype(exp)
    outputs, stats = exp.model.apply_with_stats(_cast(params, dtype), _cast(batch["x"], dtype),
                                                key=key, train=train)
    return exp.task(outputs, batch), stats


def _grads(exp: Experiment, params, batch: dict, key):
    """Mean-loss gradients over `accumulate_steps` micro-batches, scanned so memory holds one."""
    def loss(p, micro, k):
        sums, stats = forward(exp, p, micro, k, train=True)
        return sums["loss"] / sums["count"], (sums, stats)

    grad_fn = jax.grad(loss, has_aux=True)
    a = exp.cfg.optimizer.accumulate_steps
    if a == 1:
        return grad_fn(params, batch, key)
    # rows i*a .. i*a+a-1 go to micro-batches 0..a-1, so each device keeps its own rows
    micro = jax.tree.map(lambda x: x.reshape(x.shape[0] // a, a, *x.shape[1:]).swapaxes(0, 1), batch)

    def body(acc, inputs):
        m, k = inputs
        g, aux = grad_fn(params, m, k)
        return jax.tree.map(jnp.add, acc, (g, aux)), None

    zero = jax.tree.map(jnp.zeros_like, jax.eval_shape(grad_fn, params, jax.tree.map(lambda x: x[0], micro), key))
    total, _ = jax.lax.scan(body, zero, (micro, jax.random.split(key, a)))
    grads = jax.tree.map(lambda g: g / a, total[0])
    sums, stats = total[1]
    return grads, (sums, jax.tree.map(lambda s: s / a, stats))


def global_norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32))) for g in jax.tree.leaves(tree)))


def make_train_step(exp: Experiment, shardings) -> Callable:
    def train_step(state, batch):
        key, step_key = jax.random.split(state["key"])
        grads, (sums, stats) = _grads(exp, state["params"], batch, step_key)
        updates, opt_state = exp.tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = {"loss": sums["loss"] / sums["count"], "grad_norm": global_norm(grads), **stats}
        if "correct" in sums:
            metrics["accuracy"] = sums["correct"] / sums["count"]
        new = {"params": params, "opt_state": opt_state, "step": state["step"] + 1, "key": key}
        return new, metrics

    batch_sharding = meshlib.batch_sharding(exp.mesh, exp.dataset.shardable)
    return jax.jit(train_step, donate_argnums=0, in_shardings=(shardings, batch_sharding),
                   out_shardings=(shardings, meshlib.replicated(exp.mesh)))


def make_eval_step(exp: Experiment) -> Callable:
    def eval_step(params, batch):
        return forward(exp, params, batch, None, train=False)
    return jax.jit(eval_step, out_shardings=meshlib.replicated(exp.mesh))


def to_host(tree):
    """Replicated device values as numpy, also when other processes hold other devices."""
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


def evaluate(exp: Experiment, eval_step: Callable, params, split: str = "eval") -> dict[str, float]:
    """Metrics over the evaluation set (split="eval", keys eval_*) or the validation set
    (split="val", keys val_*)."""
    sharding = meshlib.batch_sharding(exp.mesh, exp.dataset.shardable)
    total, stats, n = None, None, 0
    source = exp.dataset.val_batches if split == "val" else exp.dataset.eval_batches
    batches = source(exp.cfg.train.eval_batch_size, shard(exp))
    for local in itertools.islice(batches, exp.cfg.train.eval_batches or None):
        sums, s = eval_step(params, meshlib.global_batch(local, sharding))
        total = sums if total is None else jax.tree.map(jnp.add, total, sums)
        stats = s if stats is None else jax.tree.map(jnp.add, stats, s)
        n += 1
    out = summarize(exp.dataset.task, to_host(total), split)
    out.update({f"{split}_{k}": float(v) / n for k, v in to_host(stats).items()})
    return out


def count_params(params) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))


# ----------------------------------------------------------------------------- the loop
class _StopSignals:
    """Turns SIGINT/SIGTERM into a flag the loop checks at each step boundary."""

    def __init__(self):
        self.received: int | None = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _log_record(exp: Experiment, step: int, metrics: dict, steps_per_s: float, elapsed: float) -> dict:
    record = {"step": step, **{k: float(v) for k, v in to_host(metrics).items()}}
    record["learning_rate"] = float(exp.lr(step - 1))
    record["steps_per_s"] = steps_per_s
    if exp.dataset.shardable:  # a whole-graph batch has no batch size to count examples by
        record["examples_per_s"] = steps_per_s * exp.cfg.train.batch_size
    record["elapsed_s"] = elapsed
    return record


def _saved(state, best: Best | None):
    """What a checkpoint holds: the train state, and the selected parameters when selecting."""
    return state if best is None else {**state, "best": best.tree()}


def restore(exp: Experiment, ckpt: checkpoint.Checkpointer, state, shardings, best: Best | None = None,
            step: int | None = None) -> tuple[dict, dict]:
    """The train state (and `best`'s selected parameters, in place) from a checkpoint, laid out
    like `state`/`shardings`; returns (state, data position)."""
    saved_shardings = shardings if best is None else {**shardings, "best": best.shardings(shardings, exp.mesh)}
    restored, position = ckpt.restore(checkpoint.abstract(_saved(state, best), saved_shardings), step)
    if best is not None:
        saved = restored.pop("best")
        best.params, best.scores, best.steps = saved["params"], to_host(saved["scores"]), to_host(saved["steps"])
    return restored, position


def fit(cfg: Config, *, on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Train, evaluate and write the run directory; returns the summary dict.

    `on_step(step, state)` (tests, tools) is called after every step with the live state.
    Raises ConfigError for user mistakes (before compiling) and Interrupted on SIGINT/SIGTERM.
    """
    timer = rundir.Timer()
    exp = setup(cfg)
    t = exp.cfg.train
    state, shardings = init_state(exp)  # the last user error surfaces here: no run dir made yet
    best = None if t.select == "last" else Best(t.select, jax.tree.map(jnp.copy, state["params"]))
    run_dir = rundir.prepare(exp.cfg)
    rundir.write_config(run_dir, exp.cfg)
    ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", t.keep_checkpoints)
    if exp.cfg.run.resume:
        state, _ = restore(exp, ckpt, state, shardings, best)
    start = int(to_host(state["step"]))
    train_step, eval_step = make_train_step(exp, shardings), make_eval_step(exp)
    log = rundir.MetricsLog(run_dir, t.steps, start)
    if rundir.is_writer():
        print(f"run directory: {run_dir}", flush=True)
    try:
        state, metrics, eval_metrics = _loop(exp, state, best, train_step, eval_step, ckpt, log, start, on_step)
    finally:
        log.close()
        ckpt.close()
    summary = {**eval_metrics, "wall_time_s": timer.elapsed(), "steps": int(to_host(state["step"])),
               "params": count_params(state["params"]), "model": exp.cfg.model_name,
               "data": exp.cfg.data_name, "run_dir": str(run_dir),
               **{k: float(v) for k, v in to_host(metrics).items() if k not in ("loss", "grad_norm", "accuracy")}}
    rundir.write_summary(run_dir, summary)
    if exp.cfg.run.plots and rundir.is_writer():
        rundir.plot_curves(run_dir)
        from zoo.ode_plots import PLOTS  # model-specific figures (phase portraits, densities)
        if exp.cfg.model_name in PLOTS:
            PLOTS[exp.cfg.model_name](run_dir)
    return summary


def _loop(exp, state, best, train_step, eval_step, ckpt, log, start, on_step):
    t = exp.cfg.train
    metrics, eval_metrics = {}, {}
    window = rundir.Timer()
    window_start = start
    stopped = best is not None and best.exhausted(t.patience)  # resumed an early-stopped run
    with _StopSignals() as stop:
        for step in range(start, t.steps):
            if stopped:
                break
            state, metrics = train_step(state, train_batch(exp, step))
            done = step + 1
            if on_step is not None:
                on_step(done, state)
            if stop.received is not None:
                ckpt.save(done, _saved(state, best), exp.dataset.position(done, t.batch_size))
                raise Interrupted(f"stopped by signal {stop.received} at step {done}; checkpoint saved",
                                  stop.received, str(log.path))
            evaluate_now = done == t.steps or (t.eval_every and done % t.eval_every == 0)
            if done % t.log_every == 0 or evaluate_now:
                jax.block_until_ready(metrics)
                rate, elapsed = (done - window_start) / max(window.elapsed(), 1e-9), log.timer.elapsed()
                evaluated = {}
                if evaluate_now and best is not None:
                    evaluated = evaluate(exp, eval_step, state["params"], "val")
                    best.update(done, state["params"], evaluated)
                    stopped = best.exhausted(t.patience)
                elif evaluate_now:
                    evaluated = eval_metrics = evaluate(exp, eval_step, state["params"])
                # selection may evaluate every step: those records wait for log_every
                if done % t.log_every == 0 or done == t.steps or stopped or (evaluate_now and best is None):
                    log.log({**_log_record(exp, done, metrics, rate, elapsed), **evaluated})
                    window, window_start = rundir.Timer(), done
            if stopped or done == t.steps or (t.checkpoint_every and done % t.checkpoint_every == 0):
                ckpt.save(done, _saved(state, best), exp.dataset.position(done, t.batch_size))
    if best is None:  # evaluated at the last step, or resumed a finished run: evaluate now
        return state, metrics, eval_metrics or evaluate(exp, eval_step, state["params"])
    return state, metrics, {**evaluate(exp, eval_step, best.params), **best.summary()}
