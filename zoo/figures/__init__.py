"""Figures: what a person looks at after training. Each takes a trained `Run`
(zoo.experiment) and writes a PNG into its run directory.

MODEL_FIGURES maps a model name to the figure drawn after its training (ODE phase portraits,
densities, ViT's CLS attention); `after_training(cfg)` lists the hooks `fit` is given by the train command.
"""
from __future__ import annotations

from collections.abc import Callable

from zoo.figures import ode, vit
from zoo.figures.curves import plot_curves

MODEL_FIGURES: dict[str, Callable] = {**ode.FIGURES, **vit.FIGURES}


def after_training(cfg) -> list[Callable]:
    """The figure hooks of a run: loss curves, and the model's own figure; none with
    run.plots=false."""
    if not cfg.run.plots:
        return []
    hooks = [lambda run: plot_curves(run.run_dir)]
    if cfg.model_name in MODEL_FIGURES:
        hooks.append(MODEL_FIGURES[cfg.model_name])
    return hooks
