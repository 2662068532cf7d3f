"""The dataset registry: `DATASETS = {name: (ConfigClass, load)}`; `load(cfg) -> Dataset`.

Everything is generated, shipped inside an installed package, or read from a path given in
the config: nothing is downloaded.
"""
from __future__ import annotations

from typing import Any, Callable

from zoo.data import digits, graphs, mnist1d, ode, text, toy2d
from zoo.data.base import ArrayDataset, Dataset

DATASETS: dict[str, tuple[type, Callable[[Any], Dataset]]] = {
    "mnist1d": (mnist1d.MNIST1DConfig, mnist1d.load),
    "spiral": (ode.SpiralConfig, ode.load_spiral),
    "digits": (digits.DigitsConfig, digits.load),
    "text": (text.TextConfig, text.load),
    "karate": (graphs.KarateConfig, graphs.load_karate),
    "planetoid": (graphs.PlanetoidConfig, graphs.load_planetoid),
    "graph_cycles": (graphs.GraphCyclesConfig, graphs.load_graph_cycles),
    "toy2d": (toy2d.Toy2DConfig, toy2d.load),
}

__all__ = ["DATASETS", "ArrayDataset", "Dataset"]
