"""Probes: the mathematics of trained networks, measured on a run (`zoo probe RUN PROBE`).

One module per probe, each pure functions of (loss_fn, params, batches) first, then
`run(run, **options) -> dict`, which measures a trained run and writes
run_dir/probes/<probe>.png and <probe>.json:

    landscape    loss along init -> trained, and on a filter-normalised plane
    curvature    top Hessian eigenvalues, Hessian trace, sharpness against 2 / learning rate
    symmetry     invariance / equivariance error under the model's group
    calibration  reliability diagram, ECE, temperature scaling
    gradflow     |dL/dz_l| through depth, |dL/dx_t| through time
    conservation energy of a learned vector field along integrated trajectories
    alignment    a translation model's cross-attention over a few test pairs (Bahdanau et al. 2015)

A loss_fn here is loss_fn(params, batch) -> (loss_sum, count), so means over several batches
(padded ones included) weigh every example once.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

PROBES = ("landscape", "curvature", "symmetry", "calibration", "gradflow", "conservation", "alignment")


def module(name: str):
    """The probe module called `name`; unknown names list the valid ones."""
    from zoo.errors import ConfigError

    if name not in PROBES:
        raise ConfigError(f"unknown probe {name!r}; valid: {', '.join(PROBES)}")
    return importlib.import_module(f"zoo.probes.{name}")


def options(name: str) -> dict[str, Any]:
    """The keyword options of probe `name` with their defaults."""
    parameters = inspect.signature(module(name).run).parameters
    return {k: p.default for k, p in parameters.items() if p.kind is p.KEYWORD_ONLY}


def check_options(name: str, kwargs: dict[str, Any]) -> None:
    """Raise ConfigError naming the first option probe `name` does not have."""
    from zoo.errors import ConfigError

    valid = options(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(f"probe {name} has no option {unknown[0]!r}; valid: {', '.join(valid)}")


def run(name: str, trained: Any, **kwargs: Any) -> dict:
    """Probe a loaded run (zoo.experiment.Run); unknown options list the valid ones."""
    check_options(name, kwargs)
    return module(name).run(trained, **kwargs)
