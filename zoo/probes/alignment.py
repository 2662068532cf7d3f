"""Alignment of a translation model: which source characters each target character reads, as
the cross-attention weights alpha [T, S] of a few test pairs (the figure of Bahdanau, Cho &
Bengio 2015), teacher-forced on the reference translation.

Axis legend: T target characters, S source characters.

The alignment path is p_i = argmax_j alpha_ij for each real target character i. Translation
that keeps word order gives a path that only moves forward; German numbers put the units before
the tens ("twenty-three" -> "dreiundzwanzig"), so its path jumps back: after reading "three" for
"drei" it reads "twenty" for "zwanzig". A crossing is a backward jump of more than `jump`
source characters; the probe counts them per pair and over the split.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def path(weights: np.ndarray) -> np.ndarray:
    """The alignment path [T]: the source position each target position attends to most."""
    return np.asarray(weights).argmax(-1)


def crossings(weights: np.ndarray, jump: int = 2) -> int:
    """Backward jumps of the alignment path by more than `jump` source positions."""
    return int(np.sum(np.diff(path(weights)) < -jump))


def pick(sources: list[str], count: int) -> list[int]:
    """Indices of `count` test pairs to draw: short ones with a tens-units compound ("-")
    first, where German reorders."""
    order = sorted(range(len(sources)), key=lambda i: ("-" not in sources[i], len(sources[i]), sources[i]))
    return order[:count]


def run(run: Any, *, examples: int = 4, jump: int = 2) -> dict:
    """Draw the alignment of `examples` test pairs and count crossings over every test pair;
    writes run_dir/probes/alignment.png and .json."""
    import jax.numpy as jnp

    from zoo.errors import ConfigError
    from zoo.models import entry
    from zoo.probes import rundata

    align = entry(run.cfg.model_name).alignment
    if align is None or run.exp.dataset.task != "translation":
        raise ConfigError(f"alignment needs a translation model; {run.run_dir} holds {run.cfg.model_name!r}")
    test = run.exp.dataset.test
    sources, targets = run.exp.dataset.texts("test")
    weights = []
    for start in range(0, len(sources), run.cfg.train.eval_batch_size):
        rows = slice(start, start + run.cfg.train.eval_batch_size)
        x = {"source": jnp.asarray(test["source"][rows]), "target": jnp.asarray(test["target"][rows])}
        weights.append(np.asarray(align(run.cfg.model_name, run.cfg.model, run.params, x)))
    weights = np.concatenate(weights)
    counts = [crossings(w[:len(t) + 1, :len(s) + 1], jump) for w, s, t in zip(weights, sources, targets)]
    shown = pick(sources, examples)
    numbers = {"pairs_with_a_crossing": float(np.mean([c > 0 for c in counts])), "jump": jump,
               "examples": [{"source": sources[i], "target": targets[i], "crossings": counts[i],
                             "path": path(weights[i][:len(targets[i]) + 1, :len(sources[i]) + 1]).tolist()}
                            for i in shown]}
    return rundata.write(run.run_dir, "alignment", numbers, plot(weights[shown], numbers["examples"]))


def plot(weights: np.ndarray, examples: list[dict]) -> Any:
    """One heatmap per pair: target characters down, source characters across (EOS last)."""
    from zoo.probes import rundata
    fig, axes = rundata.figure(len(examples), width=3.6, height=3.4)
    for ax, w, e in zip(axes, weights, examples):
        source, target = list(e["source"]) + ["</s>"], list(e["target"]) + ["</s>"]
        ax.imshow(w[:len(target), :len(source)], cmap="Greys", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(source)), source, fontsize=7)
        ax.set_yticks(range(len(target)), target, fontsize=7)
        ax.set_title(f"{e['crossings']} crossing(s)", fontsize=9)
    fig.tight_layout()
    return fig
