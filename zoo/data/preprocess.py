"""What a dataset fitted on its training split, applied alike in training, evaluation, prediction
and export: `Dataset.preprocessing`, a JSON-able dict stored in the run directory as
`preprocessing.json`.

Keys (all optional; a built-in dataset has none):

    format        "npz" | "npy" | "csv" | "tsv" | "image_folder" | "graph_npz" | "text": what training read
    input_shape   [d1, ...]   the shape of one raw row as read from a file
    dtype         "float32" | "int32"   the model's input dtype
    scale         a number the raw rows are multiplied by (1/255 for 8-bit images)
    standardize   {"mean": [...], "std": [...]}  per entry of a raw row (flattened), training split only
    shape         [s1, ...]   each row reshaped to this after the steps above
    columns       feature column names of a CSV, in the order the model reads them
    label         the label column (CSV) or array (.npz)
    x_key         the .npz array the inputs came from
    class_names   class index -> name (a CSV's text labels, an image folder's sub-folders)
    task          "classification" | "regression" | ...
    image_size    [H, W] images are resized to;  mode: "L" (grey) or "RGB"
    vocab         the characters of a character-level language model, in index order

    raw rows [N, *input_shape] -> cast(dtype) -> * scale -> (x - mean) / std -> reshape [N, *shape]
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from zoo.errors import ConfigError

FILE = "preprocessing.json"


def transform(preprocessing: dict) -> Callable[[np.ndarray], np.ndarray]:
    """`apply` with the statistics converted to arrays once (the per-batch transform of a dataset)."""
    p = preprocessing
    input_shape = tuple(p["input_shape"]) if "input_shape" in p else None
    dtype = np.dtype(p.get("dtype", "float32"))
    scale = np.float32(p["scale"]) if "scale" in p else None
    stats = p.get("standardize")
    if stats is not None:
        mean = np.asarray(stats["mean"], np.float32).reshape(input_shape)
        std = np.asarray(stats["std"], np.float32).reshape(input_shape)

    def apply_to(x_raw: np.ndarray) -> np.ndarray:
        x = np.asarray(x_raw)
        if input_shape is not None and x.shape[1:] != input_shape:
            raise ConfigError(f"inputs have rows of shape {list(x.shape[1:])}, but the model was trained on rows of "
                              f"shape {list(input_shape)}; give inputs laid out as the training data was")
        x = x.astype(dtype)
        if scale is not None:
            x *= scale
        if stats is not None:
            x = (x - mean) / std
        return x.reshape(len(x), *p["shape"]) if p.get("shape") else x
    return apply_to


def apply(preprocessing: dict, x_raw: np.ndarray) -> np.ndarray:
    """Model inputs [N, *shape] from raw feature rows [N, *input_shape] as read from a file of the
    training data's format (see the module docstring for the steps)."""
    return transform(preprocessing)(x_raw)


def save(run_dir: str | Path, preprocessing: dict) -> None:
    """Write run_dir/preprocessing.json atomically."""
    file = Path(run_dir) / FILE
    tmp = file.with_name(f".{FILE}.tmp")
    tmp.write_text(json.dumps(preprocessing, indent=1) + "\n")
    os.replace(tmp, file)


def load(run_dir: str | Path) -> dict:
    """The preprocessing a run stored; {} for a run without one (built-in datasets)."""
    file = Path(run_dir) / FILE
    return json.loads(file.read_text()) if file.exists() else {}
