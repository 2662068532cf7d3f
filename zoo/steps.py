"""The jitted steps of one replica: `train_step(state, batch) -> (state, metrics)` and
`eval_step(params, batch) -> (metric sums, stats)`, and the evaluation loop over a split.

A stacked run (zoo.replicas) vmaps these same functions over its replicas; the trainer
(zoo.train) drives either through one loop.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from zoo import experiment as ex
from zoo import mesh as meshlib
from zoo import throughput
from zoo.experiment import Experiment
from zoo.models.core import STATE
from zoo.tasks import summarize


def _grads(exp: Experiment, params, batch: dict, key):
    """Mean-loss gradients over `accumulate_steps` micro-batches, scanned so memory holds one."""
    def loss(p, micro, k):
        sums, stats = ex.loss_sums(exp, p, micro, k, train=True)
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


@jax.jit
def _finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))


def all_finite(tree) -> bool:
    """Whether every value of every leaf of `tree` is finite (one jitted reduction)."""
    return bool(_finite(tree))


def train_step_fn(exp: Experiment) -> Callable:
    """The pure `train_step(state, batch) -> (state, metrics)` of `exp` (not jitted).

    A model's state (BatchNorm's running statistics, zoo.models.core.Model) comes back from the
    training forward pass and replaces the old one with the update.

    A step whose loss or gradient is not finite is skipped, the model's state with it: the
    optimizer's update runs under `lax.cond` on that one flag, so it never reaches the params or
    the optimizer state, and a finite step pays nothing for the guard (a `where` over every
    parameter and optimizer leaf made an MLP step touch 26% more bytes: bench/README.md,
    "divergence guard"). Under vmap (stacked replicas) the cond becomes a per-replica select, as
    a `where` would be.
    """
    def update(operand):
        grads, params, opt_state, model_state = operand
        updates, opt_state = exp.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if model_state is not None:   # the model's state is replaced, not trained (zoo.models.core)
            params = {**params, STATE: model_state}
        return params, opt_state

    def train_step(state, batch):
        key, step_key = jax.random.split(state["key"])
        grads, (sums, stats) = _grads(exp, state["params"], batch, step_key)
        model_state = stats.pop(STATE, None)
        metrics = {"loss": sums["loss"] / sums["count"], "grad_norm": global_norm(grads), **stats}
        if "correct" in sums:
            metrics["accuracy"] = sums["correct"] / sums["count"]
        finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
        params, opt_state = jax.lax.cond(finite, update, lambda operand: operand[1:3],
                                         (grads, state["params"], state["opt_state"], model_state))
        metrics["bad_step"] = jnp.logical_not(finite).astype(jnp.int32)
        # the step and the key advance either way: batches and dropout stay a function of the step
        new = {"params": params, "opt_state": opt_state, "step": state["step"] + 1, "key": key}
        return new, metrics
    return train_step


def make_train_step(exp: Experiment, shardings) -> Callable:
    """The jitted `train_step(state, batch) -> (state, metrics)`, state donated."""
    batch_sharding = meshlib.batch_sharding(exp.mesh, exp.dataset.shardable)
    return jax.jit(train_step_fn(exp), donate_argnums=0, in_shardings=(shardings, batch_sharding),
                   out_shardings=(shardings, meshlib.replicated(exp.mesh)))


def eval_step_fn(exp: Experiment) -> Callable:
    """The pure `eval_step(params, batch) -> (metric sums, stats)` of `exp`."""
    return lambda params, batch: ex.loss_sums(exp, params, batch, None, train=False)


def make_eval_step(exp: Experiment) -> Callable:
    """The jitted `eval_step(params, batch) -> (metric sums, stats)`."""
    return jax.jit(eval_step_fn(exp), out_shardings=meshlib.replicated(exp.mesh))


def evaluate(exp: Experiment, eval_step: Callable, params, split: str = "eval",
             replicas: int | None = None) -> dict[str, float] | list[dict[str, float]]:
    """Metrics over the evaluation set (split="eval", keys eval_*) or the validation set
    (split="val", keys val_*). replicas=R: `eval_step` is vmapped over R stacked params and
    the result is each replica's metrics, a list of R dicts."""
    sharding = meshlib.batch_sharding(exp.mesh, exp.dataset.shardable)
    source = exp.dataset.val_batches if split == "val" else exp.dataset.eval_batches
    totals, n = None, 0
    for local in itertools.islice(source(exp.cfg.train.eval_batch_size, ex.shard(exp)), exp.cfg.train.eval_batches or None):
        out = eval_step(params, meshlib.global_batch(local, sharding))
        totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
        n += 1
    sums, stats = meshlib.to_host(totals)

    def one(pick):
        return {**summarize(exp.dataset.task, jax.tree.map(pick, sums), split),
                **{f"{split}_{k}": float(pick(v)) / n for k, v in stats.items()}}
    if replicas is None:
        return one(lambda v: v)
    return [one(lambda v, r=r: v[r]) for r in range(replicas)]


def step_rates(exp: Experiment, flops: float, tokens: int | None, replicas: int = 1) -> throughput.StepRates:
    """FLOPs (`flops` per device: over the mesh), examples and tokens of one train step of
    `replicas` replicas (`tokens`: a language model step's targets over every replica), and the
    mesh's peak FLOP/s at the configured precision."""
    devices = exp.mesh.devices.size
    peak = throughput.peak_flops(exp.mesh.devices.flat[0], exp.cfg.train.precision)
    return throughput.StepRates(flops=flops * devices,
                                examples=exp.cfg.train.batch_size * replicas if exp.dataset.shardable else None,
                                tokens=tokens, peak=peak * devices if peak else None,
                                cpu_devices=devices if exp.mesh.devices.flat[0].platform == "cpu" else 0)
