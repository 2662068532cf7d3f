"""Use a trained run: evaluate it on a split, or predict on new inputs.

    run = zoo.load_run("runs/mnist1d_cnn")
    zoo.evaluate(run)                      # {"eval_loss": ..., "eval_accuracy": ...}, as summary.json
    zoo.evaluate(run, split="val")         # the validation split, keys val_*
    zoo.evaluate(run, split="train")       # the training examples, keys train_* (in-memory data)
    out = zoo.predict(run, x)              # {"class": [N], "probabilities": [N, K]} for classifiers

`predict` pads the rows into batches of `train.eval_batch_size` (the size evaluation compiled
for), so any number of rows compiles once, and drops the padding from what it returns.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from zoo import experiment as ex
from zoo import mesh as meshlib
from zoo import steps
from zoo.data.base import ArrayDataset
from zoo.errors import ConfigError
from zoo.experiment import Run

SPLITS = {"test": "eval", "val": "val", "train": "train"}


def evaluate(run: Run, split: Literal["test", "val", "train"] = "test") -> dict[str, float]:
    """Metrics of the run's params over its test split (keys eval_*, as in summary.json), its
    validation split (keys val_*) or, in eval mode (no dropout), every training example
    (keys train_*: the training error of He et al. 2016's degradation experiment)."""
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is not one of: {', '.join(SPLITS)}")
    if split == "val" and not run.exp.dataset.has_validation():
        raise ConfigError(f"data {run.cfg.data_name!r} of {run.run_dir} has no validation split; use split=test")
    exp = training_set_as_evaluation(run) if split == "train" else run.exp
    return steps.evaluate(exp, steps.make_eval_step(exp), run.params, SPLITS[split])


def training_set_as_evaluation(run: Run) -> ex.Experiment:
    """The run's experiment with its training examples as the evaluation set."""
    data = run.exp.dataset
    if not isinstance(data, ArrayDataset):
        raise ConfigError(f"data {run.cfg.data_name!r} of {run.run_dir} does not hold its training examples "
                          "in memory; evaluate it on split=test or val")
    return dataclasses.replace(run.exp, dataset=dataclasses.replace(data, test=data.train))


def _forward(run: Run):
    exp = run.exp
    sharding = meshlib.batch_sharding(exp.mesh, exp.dataset.shardable)

    def forward(params, x):
        dtype = ex.compute_dtype(exp)
        return exp.model.apply(ex.cast(params, dtype), ex.cast(x, dtype)).astype(jnp.float32)
    return jax.jit(forward, in_shardings=(None, sharding), out_shardings=meshlib.replicated(exp.mesh))


def outputs(run: Run, x: Any) -> np.ndarray:
    """The model's outputs on inputs `x` (an array or pytree with leading axis N): [N, ...]."""
    leaves = jax.tree.leaves(x)
    n, size = leaves[0].shape[0], run.cfg.train.eval_batch_size
    forward, chunks = _forward(run), []
    for start in range(0, n, size):
        rows = np.minimum(np.arange(start, start + size), n - 1)  # pad with copies of the last row
        batch = jax.tree.map(lambda a, rows=rows: np.asarray(a)[rows], x)
        chunks.append(np.asarray(forward(run.params, batch))[:min(size, n - start)])
    return np.concatenate(chunks)


def predict(run: Run, x: Any) -> dict[str, np.ndarray]:
    """Predictions on model inputs `x`: classes and probabilities for classifiers, outputs for
    regression, log-densities for density models."""
    task = run.exp.dataset.task
    if task == "language_model":
        raise ConfigError(f"{run.run_dir} is a language model: sample from it with zoo generate")
    y = outputs(run, x)
    if task == "classification":
        return {"class": y.argmax(-1).astype(np.int32), "probabilities": np.asarray(jax.nn.softmax(y, -1))}
    if task == "density":
        return {"log_density": y}
    return {"output": y}


def predict_ensemble(runs: list[Run], x: Any) -> dict[str, np.ndarray]:
    """Predictions of a run's replicas (load_runs) as a deep ensemble (zoo.ensemble): the class
    and the mean of the replicas' probabilities for classifiers, the mean output for regression,
    each with the replicas' standard deviation beside it (KEY_std)."""
    from zoo import ensemble
    out = predict(ensemble.of_runs(runs), x)   # softmax of log(mean probability): the mean probability
    each = np.stack([outputs(r, x) for r in runs])
    key = "probabilities" if "probabilities" in out else "output"
    out[f"{key}_std"] = ensemble.spread(each, runs[0].exp.dataset.task).astype(np.float32)
    return out
