"""The dataset registry: `DATASETS = {name: DatasetEntry(config, load, description)}`, where
`load(cfg) -> Dataset` (zoo.data.base). `entry(name)` also resolves "package.module:function",
a dataset in the user's own code marked with `@zoo.data.dataset` (zoo.data.plugin).

Everything is generated, shipped inside an installed package, or read from a path given in
the config: nothing is downloaded.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from zoo.data import (
    anode,
    arrays,
    digit_sets,
    digits,
    graph_npz,
    graphs,
    hamiltonian,
    images,
    irregular,
    memory_tasks,
    mnist1d,
    nbody,
    ode,
    parallel_text,
    plugin,
    text,
    timeseries,
    toy2d,
    translation,
)
from zoo.data.base import ArrayDataset, Dataset
from zoo.data.plugin import dataset


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
    "digit_sets": DatasetEntry(digit_sets.DigitSetsConfig, digit_sets.load,
                               "sets of the bundled digits labelled by their sum (Deep Sets): train <= 10, test 50"),
    "text": DatasetEntry(text.TextConfig, text.load,
                         "characters of a UTF-8 file (default: CPython's pydoc topics) for language models"),
    "karate": DatasetEntry(graphs.KarateConfig, graphs.load_karate,
                           "Zachary's karate club (networkx): node classification, one graph"),
    "planetoid": DatasetEntry(graphs.PlanetoidConfig, graphs.load_planetoid,
                              "Cora/CiteSeer citation graphs from data.path, the public split"),
    "graph_cycles": DatasetEntry(graphs.GraphCyclesConfig, graphs.load_graph_cycles,
                                 "generated graphs labelled by their number of independent cycles"),
    "nbody": DatasetEntry(nbody.NBodyConfig, nbody.load,
                          "charged N-body systems (NRI's simulation in 3-D, as EGNN): positions 1,000 steps ahead"),
    "hamiltonian": DatasetEntry(hamiltonian.HamiltonianConfig, hamiltonian.load,
                                "mass-spring, pendulum or two-body trajectories (HNN paper): states and their derivatives"),
    "toy2d": DatasetEntry(toy2d.Toy2DConfig, toy2d.load,
                          "2-D densities (eight Gaussians, two moons, checkerboard) for density estimation"),
    "g1d": DatasetEntry(anode.G1DConfig, anode.load_g1d,
                        "g(x) = -x on [-1, 1] (Augmented Neural ODEs): a 1-D flow cannot represent it"),
    "concentric_spheres": DatasetEntry(anode.SpheresConfig, anode.load_spheres,
                                       "a ball (-1) inside a shell (+1) (Augmented Neural ODEs), regression"),
    "irregular_periodic": DatasetEntry(irregular.IrregularConfig, irregular.load,
                                       "periodic series at random times (Latent ODEs' toy data): interpolate, extrapolate"),
    "array": DatasetEntry(arrays.ArrayConfig, arrays.load,
                          "your examples from data.path: .npz, .npy (memory-mapped) or .csv/.tsv with a header"),
    "image_folder": DatasetEntry(images.ImageFolderConfig, images.load,
                                 "your images from data.path: one sub-folder per class (PNG/JPEG/BMP), decoded once"),
    "graph_npz": DatasetEntry(graph_npz.GraphNpzConfig, graph_npz.load,
                              "your graphs from data.path: many small graphs in one .npz, one class each"),
    "translation": DatasetEntry(translation.TranslationConfig, translation.load,
                                "numbers in words, one language to another (num2words), split by number"),
    "parallel_text": DatasetEntry(parallel_text.ParallelTextConfig, parallel_text.load,
                                  "your sentence pairs from data.path: a source<TAB>target .tsv, or two aligned files"),
    "adding": DatasetEntry(memory_tasks.MemoryTaskConfig, memory_tasks.load_adding,
                           "the adding problem (Hochreiter & Schmidhuber 1997), generated: sum of 2 marked values of T"),
    "copy_memory": DatasetEntry(memory_tasks.MemoryTaskConfig, memory_tasks.load_copy_memory,
                                "copy memory, generated: repeat 10 digits after a gap of T blanks (Bai et al. 2018)"),
    "timeseries": DatasetEntry(timeseries.TimeseriesConfig, timeseries.load,
                               "UCR/UEA time series from data.path: .ts (aeon/sktime) or UCR .tsv, the archive's split"),
}


def entry(name: str) -> DatasetEntry | None:
    """The registry's entry for `name`, a plugin's for "package.module:function" (ConfigError if
    it does not resolve), or None for an unknown name."""
    if plugin.is_plugin(name):
        return DatasetEntry(*plugin.resolve(name))
    return DATASETS.get(name)


__all__ = ["DATASETS", "ArrayDataset", "Dataset", "DatasetEntry", "dataset", "entry"]
