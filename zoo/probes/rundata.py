"""What the probes read from a trained run and where they write: its loss as
loss_fn(params, batch) -> (loss_sum, count), its batches, its initial parameters, and
run_dir/probes/<probe>.json and .png.
"""
from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from zoo import experiment
from zoo.errors import ConfigError

SPLITS = ("train", "eval", "val")


def loss_fn(exp: experiment.Experiment) -> Callable:
    """(params, batch) -> (loss summed over the batch, example count), in eval mode."""
    def f(params, batch):
        sums, _ = experiment.loss_sums(exp, params, batch, None, False)
        return sums["loss"], sums["count"]
    return f


def batches(exp: experiment.Experiment, split: str, examples: int) -> list[dict]:
    """At least `examples` examples of a split as host batches: the run's first training
    batches (its own order), or the evaluation / validation set from its start. A dataset
    that is one indivisible batch (a whole graph) gives that batch."""
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    t = exp.cfg.train
    if split == "train":
        count = 1 if not exp.dataset.shardable else math.ceil(examples / t.batch_size)
        return [exp.dataset.train_batch(t.seed, step, t.batch_size) for step in range(count)]
    if split == "val" and not exp.dataset.has_validation():
        raise ConfigError(f"data {exp.cfg.data_name!r} has no validation split; use split=eval")
    source = exp.dataset.val_batches if split == "val" else exp.dataset.eval_batches
    count = 1 if not exp.dataset.shardable else math.ceil(examples / t.eval_batch_size)
    return list(itertools.islice(source(t.eval_batch_size), count))


def held_out_split(exp: experiment.Experiment) -> str:
    """The validation split when the dataset has one, else the evaluation split."""
    return "val" if exp.dataset.has_validation() else "eval"


def initial_params(exp: experiment.Experiment) -> Any:
    """The parameters the run started from (same seed, same key as the trainer)."""
    return experiment.init_state(exp)[0]["params"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def write(run_dir: Path, probe: str, numbers: dict, figure: Any) -> dict:
    """Write run_dir/probes/<probe>.json (numbers) and .png (a matplotlib figure); returns
    numbers with the two paths added."""
    out = Path(run_dir) / "probes"
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": str(out / f"{probe}.json"), "figure": str(out / f"{probe}.png")}
    figure.savefig(paths["figure"], dpi=120)
    import matplotlib.pyplot as plt
    plt.close(figure)
    numbers = {**_jsonable(numbers), "files": paths}
    Path(paths["json"]).write_text(json.dumps(numbers, indent=1) + "\n")
    return numbers


def figure(ncols: int, width: float = 4.5, height: float = 3.8) -> tuple[Any, np.ndarray]:
    """A matplotlib (Agg) figure with `ncols` axes side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]
