"""A zoo model inside flax (linen or nnx) or equinox code: thin adapters over `Model(init, apply)`.

    module = zoo.interop.linen_module(model, x)            # flax.linen.Module
    variables = module.init(key, x)                        # {"params": the zoo params pytree}
    y = module.apply(variables, x)                         # = model.apply(variables["params"], x)

    module = zoo.interop.nnx_module(model, key, x)         # flax.nnx.Module, params as nnx.Param leaves
    module = zoo.interop.equinox_module(model, key, x)     # equinox.Module, params as array leaves
    y = module(x)                                          # both: model.apply(params, x)

Each adapter is the zoo model and nothing else, so it nests in a larger module of its framework
and trains with that framework's usual optax loop; gradients and updates are those of the zoo
params themselves (a trained run's `run.params` drops in: `module.apply({"params": run.params}, x)`,
or `nnx.update` / `eqx.tree_at`). The call keeps zoo's conventions: batched inputs ([B, ...];
equinox modules usually take one example, this one takes the batch) and `train=True` with a
dropout key (`key=` for nnx and equinox; linen draws it from the "dropout" rng stream).

flax is a dependency of zoo; equinox is an extra (`pip install zoo[interop]`), imported only when
`equinox_module` is called.
"""
from __future__ import annotations

from typing import Any

import jax

from zoo.models.core import STATE, Model


def linen_module(model: Model, x_example: Any):
    """A flax.linen.Module whose collection "params" is the zoo params pytree: its top-level
    entries are the module's params, so `variables == {"params": model.init(...)}`. A model's
    state (zoo.models.core.STATE, BatchNorm's running statistics) is flax's own collection
    "batch_stats": `module.apply(variables, x, train=True, mutable=["batch_stats"])` returns its
    new values, as flax.linen.BatchNorm's. `module(x, train=False)`; with train=True the
    "dropout" rng stream gives the dropout key."""
    import flax.linen as nn

    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x_example)
    names, state_names = [n for n in shapes if n != STATE], list(shapes.get(STATE, {}))

    class ZooLinen(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            initial = {}

            def init_entry(key, name):  # one model.init, from the first entry's key
                if not initial:
                    initial.update(model.init(key, x))
                return initial[name]
            params = {name: self.param(name, init_entry, name) for name in names}
            state = {name: self.variable(STATE, name, lambda name=name: initial[STATE][name]) for name in state_names}
            if state:
                params[STATE] = {name: v.value for name, v in state.items()}
            key = self.make_rng("dropout") if train and self.has_rng("dropout") else None
            y, stats = model.apply_with_stats(params, x, key=key, train=train)
            if STATE in stats and self.is_mutable_collection(STATE) and not self.is_initializing():
                for name, v in state.items():
                    v.value = stats[STATE][name]
            return y

    return ZooLinen()


def nnx_module(model: Model, key: jax.Array, x: Any):
    """A flax.nnx.Module holding `model.init(key, x)` as a pytree of nnx.Param leaves (attribute
    `params`); `module(x, key=None, train=False)`."""
    from flax import nnx

    class ZooNNX(nnx.Module):
        def __init__(self, params):
            self.params = nnx.data(jax.tree.map(nnx.Param, params))

        def __call__(self, x, *, key=None, train: bool = False):
            params = jax.tree.map(lambda p: p[...], self.params, is_leaf=lambda v: isinstance(v, nnx.Param))
            return model.apply(params, x, key=key, train=train)

    return ZooNNX(model.init(key, x))


def equinox_module(model: Model, key: jax.Array, x: Any):
    """An equinox.Module with field `params` (the zoo params pytree) and the model's functions
    as a static field; `module(x, key=None, train=False)`."""
    import equinox as eqx

    class ZooEquinox(eqx.Module):
        params: Any
        model: Model = eqx.field(static=True)

        def __call__(self, x, *, key=None, train: bool = False):
            return self.model.apply(self.params, x, key=key, train=train)

    return ZooEquinox(model.init(key, x), model)
