"""Figures: what a person looks at after training. Each takes a trained `Run`
(zoo.experiment) and writes a PNG into its run directory.

A model's own figure (ODE phase portraits, densities, ViT's CLS attention) is named by its
registry entry (`ModelEntry.figure`); `after_training(cfg)` lists the hooks `fit` is given by
the train command.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from zoo import models
from zoo.figures.curves import plot_curves


def model_figure(name: str) -> Callable | None:
    """The figure model `name`'s registry entry names ("zoo.figures.MODULE:FUNCTION"), or None."""
    where = models.entry(name).figure
    if where is None:
        return None
    module, function = where.split(":")
    return getattr(importlib.import_module(module), function)


def import_matplotlib() -> None:
    """matplotlib with the Agg backend, imported: what drawing a figure first pays (0.35 s of a
    2-core CPU). The trainer runs it as the figure hooks' `prepare`, beside the training loop."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


def loss_curves(run) -> None:
    """The loss curves of a trained run: RUN/curves.png."""
    plot_curves(run.run_dir)


loss_curves.prepare = import_matplotlib


def after_training(cfg) -> list[Callable]:
    """The figure hooks of a run: loss curves, and the model's own figure; none with
    run.plots=false."""
    if not cfg.run.plots:
        return []
    hooks = [loss_curves]
    figure = model_figure(cfg.model_name)
    return hooks if figure is None else [*hooks, figure]
