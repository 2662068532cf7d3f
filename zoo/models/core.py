"""The types every model family shares: `Model`, what `build` returns, and `ModelEntry`, a
family's row in the registry (zoo.models.REGISTRY).

A family module imports these from here, never from the package `zoo.models`, so the registry
can import every family without an import cycle.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple


def _no_stats(apply: Callable[..., Any]) -> Callable[..., Any]:
    def apply_with_stats(params, x, *, key=None, train=False):
        return apply(params, x, key=key, train=train), {}
    return apply_with_stats


STATE = "batch_stats"  # the params key of a model's state (see Model)


def trainable(params: Any) -> Any:
    """params without the model's state (STATE): what is counted as the model's parameters."""
    if isinstance(params, dict) and STATE in params:
        return {k: v for k, v in params.items() if k != STATE}
    return params


class Model(NamedTuple):
    """Two pure functions over an explicit parameter pytree.

    init(key, x) -> params                       x: an example batch; only its shapes matter
    apply(params, x, *, key=None, train=False) -> y
    apply_with_stats(params, x, *, key=None, train=False) -> (y, stats)

    `apply` returns the outputs alone, for every model, so a model drops into any loss or
    `vmap` unchanged. `apply_with_stats` is the same computation plus a dict of scalar
    diagnostics the trainer logs (an ODE model's number of function evaluations; `{}` for most
    models); build it with `Model.with_stats` when a family has any.

    Model state, as flax's `batch_stats` collection: a model whose layers keep values that are
    not trained (BatchNorm's running statistics) returns them from `init` under the top-level
    key STATE of its params. `apply` in evaluation reads them; `apply_with_stats(...,
    train=True)` returns their new values as stats[STATE], which the trainer writes back after
    each step (zoo.steps) in place of the optimizer's update (their gradient is zero: training
    reads the batch's statistics). Every reader of a run's params (evaluate, predict, export,
    probes, ensembles, fine-tuning) takes the whole tree, and so the statistics with it.
    """
    init: Callable[..., Any]
    apply: Callable[..., Any]
    apply_with_stats: Callable[..., Any]

    @classmethod
    def of(cls, init: Callable[..., Any], apply: Callable[..., Any]) -> Model:
        """A model without diagnostics."""
        return cls(init, apply, _no_stats(apply))

    @classmethod
    def with_stats(cls, init: Callable[..., Any], apply_with_stats: Callable[..., Any]) -> Model:
        """A model whose computation also yields diagnostics: `apply` drops them."""
        def apply(params, x, *, key=None, train=False):
            return apply_with_stats(params, x, key=key, train=train)[0]
        return cls(init, apply, apply_with_stats)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One name of the model registry.

    config: the family's frozen config dataclass (one class may serve several names).
    build: build(name, cfg) -> Model; it receives the registry name, so a family can tell
        "lstm" from "gru" without a config subclass per name.
    sample: for language models, sample(name, cfg, params, prompt [B, T0] int, *, steps, key,
        temperature, top_k) -> [B, T0 + steps] int32; None otherwise.
    translate: for sequence-to-sequence models, translate(name, cfg, params, source [B, S] int,
        *, beam_size=None, length_penalty=None, max_length=None) -> [B, L] int32 output ids
        (EOS, then PAD, after each text; None: the config's choices); None otherwise. A model
        with it translates in `zoo predict` and `zoo evaluate`, and `zoo export` writes its greedy
        decode (beam_size=1) of source ids, not `apply`.
    alignment: for sequence-to-sequence models, alignment(name, cfg, params, x) -> [B, T, S],
        the cross-attention weights (rows sum to one) of teacher-forced targets x["target"] over
        x["source"]: the figure of zoo.probes.alignment; None otherwise.
    for_platform: for_platform(cfg, platform) -> cfg, the config to build with on a device
        platform ("cpu", "gpu", "tpu"): implementation choices such as the attention path follow
        the mesh the model runs on, not the host that builds it. None: the config as it is.

    What the commands need to know of a family is said here too, so that a new family plugs in
    by its module alone (README, "Add a family"):
    sequence: inputs [B, T, ...] take any length T (`zoo export` tries T symbolic).
    inputs: the kinds of input it takes (zoo.compatibility.input_kind): "arrays" (every example of
        one shape), "lengths" ({"x": [B, T, ...], "lengths": [B]}: sequences or sets of unequal
        lengths, padded after their last element), "graphs" (a GraphsTuple), "irregular"
        ({"t", "values", "observed"}); data of another kind is refused in one line before
        anything is built. A family that takes no arrays checks its input itself (a ConfigError
        naming the data it takes), as the graph and irregular-series families do.
    symmetry: the group `zoo probe RUN symmetry` tests by default (zoo.probes.symmetry.GROUPS).
    exact_symmetry: exact_symmetry(cfg, group, elements) -> (description, mask [len(elements)])
        of the group elements the architecture makes exact symmetries of its outputs.
    node_level: its outputs are always per node (a graph model without task_level).
    figure: "zoo.figures.MODULE:FUNCTION", the figure drawn after its training (run.plots).
    probe_points: "zoo.probes.gradflow:FUNCTION", (cfg, params, x) -> the points of its network
        where `zoo probe RUN gradflow` measures the gradient by depth; "time": by time step
        (recurrent models).
    cache_bytes: for models that decode with a cache, cache_bytes(cfg, length) -> bytes of the
        float32 cache one sequence of `length` positions holds (zoo summary); None otherwise.
    """
    config: type
    build: Callable[[str, Any], Model]
    _: dataclasses.KW_ONLY
    sample: Callable[..., Any] | None = None
    translate: Callable[..., Any] | None = None
    alignment: Callable[..., Any] | None = None
    for_platform: Callable[[Any, str], Any] | None = None
    sequence: bool = False
    inputs: tuple[str, ...] = ("arrays",)
    symmetry: str | None = None
    exact_symmetry: Callable[[Any, str, list], tuple[str, Any]] | None = None
    node_level: bool = False
    figure: str | None = None
    probe_points: str | None = None
    cache_bytes: Callable[[Any, int], int] | None = None


def every_element(groups: tuple[str, ...]) -> Callable[[Any, str, list], tuple[str, Any]]:
    """An exact_symmetry for architectures symmetric under every element of `groups` (message
    passing under node permutations, EGNN under E(3))."""
    import numpy as np

    def exact(cfg: Any, group: str, elements: list) -> tuple[str, Any]:
        if group in groups:
            return "every element", np.ones(len(elements), bool)
        return "", np.zeros(len(elements), bool)
    return exact
