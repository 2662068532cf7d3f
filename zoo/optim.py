"""Optimizers from config: any optax optimizer by name, a learning-rate schedule, global-norm
clipping, weight decay with a mask, and the schedule itself (for logging).

Weight decay is decoupled (Loshchilov & Hutter 2019) when the optax optimizer takes a
`weight_decay` argument (adamw, lamb, ...); otherwise it is L2 added to the gradient before the
optimizer (optax.add_decayed_weights), which is what PyTorch's `Adam(weight_decay=...)` does.
By default only parameters with ndim >= 2 decay (matrices and conv kernels, not biases or norm
scales), nanoGPT's rule; `weight_decay_mask` replaces that with a regex over parameter paths.
`freeze`, a regex over parameter paths, keeps the matching parameters fixed (fine-tuning): their
updates are zero and the optimizer keeps no state for them. A model's state (BatchNorm's running
statistics) is not a parameter and still follows the data, as under PyTorch's requires_grad=False.
"""
from __future__ import annotations

import inspect
import re

import jax
import optax

from zoo.schema import OptimizerConfig, optax_optimizers


def schedule(opt: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 over warmup_steps, then constant / cosine / linear decay to
    end_learning_rate at total_steps."""
    peak, warmup = opt.learning_rate, opt.warmup_steps
    decay_steps = max(total_steps - warmup, 1)
    kind = opt.schedule.removeprefix("warmup_")
    if kind == "cosine":
        main = optax.cosine_decay_schedule(peak, decay_steps, alpha=0.0 if is_zero(peak) else opt.end_learning_rate / peak)
    elif kind == "linear":
        main = optax.linear_schedule(peak, opt.end_learning_rate, decay_steps)
    else:
        main = optax.constant_schedule(peak)
    if warmup == 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), main], [warmup])


def is_zero(value) -> bool:
    """Whether a hyperparameter is the number 0; a traced value (a swept hyperparameter of a
    stacked run, zoo.replicas) is not known to be, so it keeps its stage in the chain."""
    return isinstance(value, (int, float)) and value == 0


def path_name(path) -> str:
    """'blocks/0/dense/kernel' for a key path of a params pytree."""
    parts = []
    for k in path:
        parts.append(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))))
    return "/".join(parts)


def decay_mask(opt: OptimizerConfig):
    """params -> pytree of bools: which leaves weight decay applies to."""
    if opt.weight_decay_mask is None:
        return lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
    pattern = re.compile(opt.weight_decay_mask)
    return lambda params: jax.tree_util.tree_map_with_path(
        lambda path, p: bool(pattern.search(path_name(path))), params)


def path_labels(pattern: str, true: str, false: str):
    """params -> pytree of labels: `true` where the path matches `pattern`, else `false`."""
    regex = re.compile(pattern)
    return lambda params: jax.tree_util.tree_map_with_path(
        lambda path, p: true if regex.search(path_name(path)) else false, params)


def build(opt: OptimizerConfig, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimizer of `opt` and its learning-rate schedule."""
    tx, lr = _trainable(opt, total_steps)
    if opt.freeze is not None:
        tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()},
                                   path_labels(opt.freeze, "frozen", "train"))
    return tx, lr


def _trainable(opt: OptimizerConfig, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    lr = schedule(opt, total_steps)
    factory = optax_optimizers()[opt.name]
    kwargs = dict(opt.kwargs)
    chain = []
    if opt.clip_norm is not None:
        chain.append(optax.clip_by_global_norm(opt.clip_norm))
    params = inspect.signature(factory).parameters
    if "weight_decay" in params:  # always set: optax.adamw would otherwise decay by 1e-4
        kwargs.setdefault("weight_decay", opt.weight_decay)
        if "mask" in params:
            kwargs.setdefault("mask", decay_mask(opt))
    elif not is_zero(opt.weight_decay):
        chain.append(optax.add_decayed_weights(opt.weight_decay, decay_mask(opt)))
    chain.append(factory(learning_rate=lr, **kwargs))
    return optax.chain(*chain), lr
