"""scikit-learn's bundled 8x8 handwritten digits (1797 images, ten classes), no download.

Images [N, 8, 8, 1] scaled to [0, 1]; a fixed stratified 20% is held out for testing.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from zoo.data.base import ArrayDataset


@dataclasses.dataclass(frozen=True)
class DigitsConfig:
    test_fraction: float = 0.2
    split_seed: int = 0


def load(cfg: DigitsConfig) -> ArrayDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=cfg.test_fraction,
                                              random_state=cfg.split_seed, stratify=y)
    return ArrayDataset(task="classification", model_defaults={"num_outputs": 10},
                        train={"x": x_tr, "y": y_tr}, test={"x": x_te, "y": y_te})
