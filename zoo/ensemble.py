"""The replicas of a run taken together: their metrics' mean and spread, and their ensemble.

A run of train.seeds=N (zoo.replicas) holds N independently initialised models of one config;
their mean metrics are what the run reports, and their mean prediction is a deep ensemble
(Lakshminarayanan, Pritzel, Blundell 2017): the mean of the replicas' class probabilities for a
classifier, of their outputs for a regression, with the replicas' standard deviation beside it.
"""
from __future__ import annotations

import statistics

import numpy as np


def mean_and_std(rows: list[dict], *, skip: tuple[str, ...] = ()) -> dict:
    """{KEY: mean, KEY_std: population std} over `rows` of every numeric KEY the rows share
    (booleans and `skip` keys aside)."""
    out = {}
    for key in rows[0]:
        values = [row.get(key) for row in rows]
        if key in skip or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        out[key], out[f"{key}_std"] = statistics.fmean(values), statistics.pstdev(values)
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    """(mean, population std) of one metric over replicas."""
    return statistics.fmean(values), statistics.pstdev(values)


def combine(outputs: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(ensemble, spread) of the replicas' outputs [R, N, ...]: for a classification task the
    mean and std of the softmax probabilities, else of the outputs themselves."""
    outputs = np.asarray(outputs, np.float64)
    if task == "classification":
        shifted = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
        outputs = shifted / shifted.sum(axis=-1, keepdims=True)
    return outputs.mean(axis=0), outputs.std(axis=0)
