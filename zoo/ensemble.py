"""The replicas of a run taken together: their metrics' mean and spread, and their ensemble.

A run of train.seeds=N (zoo.replicas) holds N independently initialised models of one config;
their mean metrics are what the run reports, and their mean prediction is a deep ensemble
(Lakshminarayanan, Pritzel, Blundell 2017): the mean of the replicas' class probabilities for a
classifier or language model, of their outputs for a regression, with the replicas' standard
deviation beside it.

    run = zoo.ensemble.load("runs/mnist1d_mlp")   # a Run whose model is the ensemble
    zoo.evaluate(run); zoo.predict(run, x); zoo.export.write(run)

The ensemble is a Model like any other: its params are the replicas' stacked [R, ...], its
apply vmaps the family's apply over them and returns the log of the mean probability (softmax
gives the ensemble's probabilities; the loss of these "logits" is the ensemble's negative log
likelihood), or the mean output for a regression. So evaluation, prediction and export take it
unchanged.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from zoo.errors import ConfigError
from zoo.experiment import Run
from zoo.models import Model

# tasks whose outputs average into an ensemble, and how: over probabilities or over values
COMBINED = {"classification": "probabilities", "language_model": "probabilities", "regression": "values",
            "integer_regression": "values"}


def mean_and_std(rows: list[dict], *, skip: tuple[str, ...] = ()) -> dict:
    """{KEY: mean, KEY_std: population std} over `rows` of every numeric KEY the rows share
    (booleans and `skip` keys aside)."""
    out = {}
    for key in rows[0]:
        values = [row.get(key) for row in rows]
        if key in skip or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        out[key], out[f"{key}_std"] = mean_std(values)
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    """(mean, population std) of one metric over replicas; nan when one is not finite (a
    diverging replica's loss: Python's statistics.pstdev raises on nan)."""
    if not all(math.isfinite(v) for v in values):
        return statistics.fmean(values), math.nan
    return statistics.fmean(values), statistics.pstdev(values)


def ensemble_model(model: Model, task: str) -> Model:
    """The deep ensemble of `model` over stacked params [R, ...]: outputs log(mean_r softmax(y_r))
    (log-sum-exp of the log-probabilities minus log R) for probability tasks, mean_r y_r for a
    regression. It cannot be initialised or trained: it is built from trained replicas."""
    if task not in COMBINED:
        raise ConfigError(f"an ensemble of a {task} model has no combined output; pick one replica (--replica I)")

    def apply(params, x, *, key=None, train=False):
        outputs = jax.vmap(lambda p: model.apply(p, x, key=key, train=train))(params)
        if COMBINED[task] == "values":
            return outputs.mean(axis=0)
        log_probs = jax.nn.log_softmax(outputs.astype(jnp.float32), axis=-1)
        return jax.nn.logsumexp(log_probs, axis=0) - jnp.log(outputs.shape[0])

    def init(key, x):
        raise TypeError("an ensemble is made of trained replicas (zoo.ensemble.load), not initialised")
    return Model.of(init, apply)


def of_runs(runs: list[Run]) -> Run:
    """The ensemble of a run's replicas (load_runs) as one Run: the first replica's experiment
    with the ensemble model, the replicas' params stacked."""
    first = runs[0]
    model = ensemble_model(first.exp.model, first.exp.dataset.task)
    params = jax.tree.map(lambda *a: jnp.stack(a), *[r.params for r in runs])
    return Run(first.run_dir, dataclasses.replace(first.exp, model=model), params, first.step)


def load(run_dir: str | Path, step: int | None = None, params: str = "last", **kwargs) -> Run:
    """The ensemble of a run directory's replicas (train.seeds, train.sweep), as load_runs reads them."""
    from zoo.experiment import load_runs
    return of_runs(load_runs(run_dir, step, params, **kwargs))


def spread(outputs: np.ndarray, task: str) -> np.ndarray:
    """The replicas' standard deviation over outputs [R, N, ...]: of their class probabilities
    for probability tasks, of the outputs themselves for a regression."""
    outputs = np.asarray(outputs, np.float64)
    if COMBINED.get(task) == "probabilities":
        shifted = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
        outputs = shifted / shifted.sum(axis=-1, keepdims=True)
    return outputs.std(axis=0)
