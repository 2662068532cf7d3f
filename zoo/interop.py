"""A zoo model inside flax (linen or nnx) or equinox code: thin adapters over `Model(init, apply)`.

    module = zoo.interop.linen_module(model, x)            # flax.linen.Module
    variables = module.init(key, x)                        # {"params": the zoo params pytree}
    y = module.apply(variables, x)                         # = model.apply(variables["params"], x)

    module = zoo.interop.nnx_module(model, key, x)         # flax.nnx.Module, params as nnx.Param leaves
    module = zoo.interop.equinox_module(model, key, x)     # equinox.Module, params as array leaves
    y = module(x)                                          # both: model.apply(params, x)

A model with state (BatchNorm's running statistics, zoo.models.core.STATE) is linen's
"batch_stats" collection, nnx.BatchStat variables updated in place by a training call, and in
equinox a stateful module: `module, state = zoo.interop.equinox_module_with_state(model, key, x)`,
`y, state = module(x, state, train=True)`, as eqx.nn.BatchNorm.

Each adapter is the zoo model and nothing else, so it nests in a larger module of its framework
and trains with that framework's usual optax loop; gradients and updates are those of the zoo
params themselves (a trained run's `run.params` drops in: `module.apply({"params": run.params}, x)`,
or `nnx.update` / `eqx.tree_at`). The call keeps zoo's conventions: batched inputs ([B, ...];
equinox modules usually take one example, this one takes the batch) and `train=True` with a
dropout key (`key=` for nnx and equinox; linen draws it from the "dropout" rng stream).

flax is a dependency of zoo; equinox is an extra (`pip install zoo[interop]`), imported only when
`equinox_module` or `equinox_module_with_state` is called.
"""
from __future__ import annotations

import functools
from typing import Any

import jax

from zoo.models.core import STATE, Model, trainable


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
    """A flax.nnx.Module holding `model.init(key, x)`: its parameters as nnx.Param leaves
    (attribute `params`) and a model's state (zoo.models.core.STATE, BatchNorm's running
    statistics) as nnx.BatchStat leaves (attribute `batch_stats`, None without state), which a
    call with train=True updates in place, as flax.nnx.BatchNorm's; an optimizer over nnx.Param
    leaves them alone. `module(x, key=None, train=False)`."""
    from flax import nnx

    def values(tree):
        return jax.tree.map(lambda v: v[...], tree, is_leaf=lambda v: isinstance(v, nnx.Variable))

    class ZooNNX(nnx.Module):
        def __init__(self, params):
            self.params = nnx.data(jax.tree.map(nnx.Param, trainable(params)))
            stateful = isinstance(params, dict) and STATE in params
            self.batch_stats = nnx.data(jax.tree.map(nnx.BatchStat, params[STATE]) if stateful else None)

        def __call__(self, x, *, key=None, train: bool = False):
            params = values(self.params)
            if self.batch_stats is None:
                return model.apply(params, x, key=key, train=train)
            params[STATE] = values(self.batch_stats)
            if not train:
                return model.apply(params, x, key=key)
            y, stats = model.apply_with_stats(params, x, key=key, train=True)
            variables = jax.tree.leaves(self.batch_stats, is_leaf=lambda v: isinstance(v, nnx.Variable))
            for variable, value in zip(variables, jax.tree.leaves(stats[STATE]), strict=True):
                variable[...] = value
            return y

    return ZooNNX(model.init(key, x))


def equinox_module(model: Model, key: jax.Array, x: Any):
    """An equinox.Module with field `params` (the zoo params pytree) and the model's functions
    as a static field; `module(x, key=None, train=False)`. A model with state (BatchNorm's
    running statistics) is one of equinox's stateful modules: equinox_module_with_state."""
    params = model.init(key, x)
    if isinstance(params, dict) and STATE in params:
        raise ValueError("this model keeps state (zoo.models.core.STATE: BatchNorm's running statistics), which "
                         "equinox passes beside the module: build it with zoo.interop.equinox_module_with_state"
                         "(model, key, x), which returns (module, state) as eqx.nn.make_with_state does")
    return _equinox_classes()[0](params, model)


def equinox_module_with_state(model: Model, key: jax.Array, x: Any):
    """(module, state), as eqx.nn.make_with_state returns them: the module's field `params`
    holds the trainable params, and an eqx.nn.StateIndex the model's state (zoo.models.core.STATE,
    BatchNorm's running statistics), whose values travel in `state`, an eqx.nn.State.
    `module(x, state, key=None, train=False) -> (y, state)`: train=True returns the new
    statistics in the state, as eqx.nn.BatchNorm does; evaluation reads them. A model without
    state works too, its state left as it is."""
    import equinox as eqx

    params = model.init(key, x)
    stateful = isinstance(params, dict) and STATE in params
    index = eqx.nn.StateIndex(params[STATE] if stateful else {})
    return eqx.nn.make_with_state(_equinox_classes()[1])(trainable(params), model, index, stateful)


@functools.cache
def _equinox_classes():
    """The equinox module classes, defined once on first use (equinox is an extra)."""
    import equinox as eqx

    class ZooEquinox(eqx.Module):
        params: Any
        model: Model = eqx.field(static=True)

        def __call__(self, x, *, key=None, train: bool = False):
            return self.model.apply(self.params, x, key=key, train=train)

    class ZooEquinoxWithState(eqx.Module):
        params: Any
        model: Model = eqx.field(static=True)
        state_index: eqx.nn.StateIndex
        stateful: bool = eqx.field(static=True)

        def __call__(self, x, state, *, key=None, train: bool = False):
            if not self.stateful:
                return self.model.apply(self.params, x, key=key, train=train), state
            params = {**self.params, STATE: state.get(self.state_index)}
            if not train:
                return self.model.apply(params, x, key=key), state
            y, stats = self.model.apply_with_stats(params, x, key=key, train=True)
            return y, state.set(self.state_index, stats[STATE])

    return ZooEquinox, ZooEquinoxWithState
