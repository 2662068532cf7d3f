"""The dataset registry: `DATASETS = {name: DatasetEntry(config, load, description)}`, where
`load(cfg) -> Dataset` (zoo.data.base).

Everything is generated, shipped inside an installed package, or read from a path given in
the config: nothing is downloaded.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from zoo.data import digits, graphs, mnist1d, ode, text, toy2d
from zoo.data.base import ArrayDataset, Dataset


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    """One name of the dataset registry: its frozen config class, `load(cfg) -> Dataset`, and
    one line for `zoo list datasets`."""
    config: type
    load: Callable[[Any], Dataset]
    description: str


DATASETS: dict[str, DatasetEntry] = {
    "mnist1d": DatasetEntry(mnist1d.MNIST1DConfig, mnist1d.load,
                            "MNIST-1D (Greydanus 2020), generated: 4000/1000 split, as vectors, sequences or patches"),
    "spiral": DatasetEntry(ode.SpiralConfig, ode.load_spiral,
                           "2-D spiral trajectories integrated from a known ODE (torchdiffeq's demo)"),
    "digits": DatasetEntry(digits.DigitsConfig, digits.load,
                           "scikit-learn's bundled 8x8 handwritten digits as images, 20% held out"),
    "text": DatasetEntry(text.TextConfig, text.load,
                         "characters of a UTF-8 file (default: CPython's pydoc topics) for language models"),
    "karate": DatasetEntry(graphs.KarateConfig, graphs.load_karate,
                           "Zachary's karate club (networkx): node classification, one graph"),
    "planetoid": DatasetEntry(graphs.PlanetoidConfig, graphs.load_planetoid,
                              "Cora/CiteSeer citation graphs from data.path, the public split"),
    "graph_cycles": DatasetEntry(graphs.GraphCyclesConfig, graphs.load_graph_cycles,
                                 "generated graphs labelled by their number of independent cycles"),
    "toy2d": DatasetEntry(toy2d.Toy2DConfig, toy2d.load,
                          "2-D densities (eight Gaussians, two moons, checkerboard) for density estimation"),
}

__all__ = ["DATASETS", "ArrayDataset", "Dataset", "DatasetEntry"]
