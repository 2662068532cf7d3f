"""Sets of handwritten digits labelled by their sum: the digit-summation experiment of Deep Sets
(Zaheer et al. 2017, section 4.1.2 and Fig. 2), on scikit-learn's bundled 8x8 digits.

Axis legend: N sets, T set size (padded to the split's largest), F features per element.

The 1797 images are split as zoo's `digits` dataset (a stratified `test_fraction` held out, from
`split_seed`); training sets draw their elements from the training images only, test sets from
the held-out ones, so no test image is ever seen in training. Each set is

    size  n ~ U{1, ..., max_size} (training)     n = test_size (testing)
    elements  i_1..i_n drawn uniformly, with replacement, from the split's images
    x = {"x": images[i_1..i_n] flattened, zeros past n   [T, F] float32 in [0, 1], F = 64,
         "lengths": n                                    int32}
    y = digit(i_1) + ... + digit(i_n)                    [1] float32

or, with elements="digit", each element the one-hot [10] of its digit instead of its pixels
(the paper's "text" inputs: the digits given, only the summing left to learn). The task is
`integer_regression` (squared error; accuracy: the rounded output equals the sum), so a
model can answer sums it never saw in training (up to 9 x test_size). The paper trains on sets
of up to 10 and tests on sets of up to 100; here up to `test_size` (default 50).
Sets are stored as image indices [N, T] (-1 past a set's size) and turned into pixels per
batch (elements). Deterministic from `seed` (sets) and `split_seed` (the image split).
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from zoo.data.base import ArrayDataset, Rows
from zoo.data.digits import DigitsConfig
from zoo.data.digits import load as load_digits
from zoo.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DigitSetsConfig:
    max_size: int = 10            # training sets hold 1..max_size digits
    test_size: int = 50           # every test set holds this many digits
    num_train: int = 50_000       # training sets
    num_test: int = 1_000         # test sets
    test_fraction: float = 0.2    # of the images, held out for the test sets (as data.name=digits)
    split_seed: int = 0
    seed: int = 0                 # draws the sets
    elements: Literal["image", "digit"] = "image"   # an element: its 64 pixels, or its digit one-hot [10]


def draw_sets(rng: np.random.Generator, pool: np.ndarray, sizes: np.ndarray, width: int) -> np.ndarray:
    """int32 [len(sizes), width]: sets of image indices from `pool`, -1 past each set's size."""
    index = pool[rng.integers(0, len(pool), (len(sizes), width))]
    return np.where(np.arange(width) < sizes[:, None], index, -1).astype(np.int32)


def elements(images: np.ndarray, labels: np.ndarray, kind: str):
    """index sets [B, T] -> {"x": [B, T, F] (zeros past a set's size), "lengths": [B]}: F = 64
    pixels of each image, or the one-hot [10] of its digit (kind "digit")."""
    rows = images.reshape(len(images), -1) if kind == "image" else np.eye(10, dtype=np.float32)[labels]

    def transform(index: np.ndarray) -> dict[str, np.ndarray]:
        real = index >= 0
        x = np.where(real[..., None], rows[np.maximum(index, 0)], np.float32(0))
        return {"x": x, "lengths": real.sum(-1).astype(np.int32)}
    return transform


def set_sums(index: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float32 [N, 1]: the sum of each set's digits."""
    return np.where(index >= 0, labels[np.maximum(index, 0)], 0).sum(-1, keepdims=True).astype(np.float32)


@dataclasses.dataclass
class DigitSetsDataset(ArrayDataset):
    """The sets as rows of image indices; `sets(size, count, seed)` draws more test sets of any
    size from the held-out images (accuracy against set size, zoo.figures.sets)."""
    images: dict = dataclasses.field(default_factory=dict)       # split -> (images [M, 8, 8, 1], digits [M])
    elements: str = "image"

    def sets(self, size: int, count: int, seed: int = 0) -> dict:
        """{"x": Rows of `count` test sets of `size` digits, "y": their sums [count, 1]}."""
        images, labels = self.images["test"]
        index = draw_sets(np.random.default_rng([seed, size]), np.arange(len(labels)), np.full(count, size), size)
        return {"x": Rows(index, transform=elements(images, labels, self.elements)), "y": set_sums(index, labels)}


def check(cfg: DigitSetsConfig) -> None:
    for key in ("max_size", "test_size", "num_train", "num_test"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"data.{key}={getattr(cfg, key)} must be at least 1")


def load(cfg: DigitSetsConfig) -> DigitSetsDataset:
    check(cfg)
    source = load_digits(DigitsConfig(test_fraction=cfg.test_fraction, split_seed=cfg.split_seed))
    rng = np.random.default_rng(cfg.seed)
    split = {}
    for name, part, sizes in (("train", source.train, rng.integers(1, cfg.max_size + 1, cfg.num_train)),
                              ("test", source.test, np.full(cfg.num_test, cfg.test_size))):
        index = draw_sets(rng, np.arange(len(part["y"])), sizes, int(sizes.max()))
        split[name] = {"x": Rows(index, transform=elements(part["x"], part["y"], cfg.elements)), "y": set_sums(index, part["y"])}
    return DigitSetsDataset(task="integer_regression", model_defaults={"num_outputs": 1},
                            preprocessing={"max_size": cfg.max_size, "test_size": cfg.test_size},
                            train=split["train"], test=split["test"], elements=cfg.elements,
                            images={"train": (source.train["x"], source.train["y"]),
                                    "test": (source.test["x"], source.test["y"])})
