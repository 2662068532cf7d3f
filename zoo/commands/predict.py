"""`zoo predict RUN --input FILE --output FILE`: predictions of a trained run on new inputs.

The input is read in the formats the data options read (.npz, .npy, .csv/.tsv with the training
columns, an image file or folder) and goes through the preprocessing the run stored (the
standardisation, reshaping and resizing fitted on its training split). The output (.npz or
.csv) holds the class and each class's probability for classifiers, the outputs for regression,
log p(x) for density models. Language models are sampled with `zoo generate` instead.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from zoo.errors import ConfigError

OUTPUT_FORMATS = (".npz", ".csv")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="predict with a trained run on new inputs",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a run directory, e.g. runs/wine_csv_mlp")
    p.add_argument("--input", required=True, help="new inputs: .npz, .npy, .csv, .tsv, an image or a folder")
    p.add_argument("--output", required=True, help="where predictions go: .npz or .csv")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--params", choices=["last", "best"], default=None,
                   help="the checkpoint's last params or the selected ones (default: what the summary used)")
    p.set_defaults(run=run)
    return p


def check_inputs(x: np.ndarray, expected) -> None:
    """One line when new inputs differ in shape or kind from what the model was trained on."""
    if tuple(x.shape[1:]) != tuple(expected.shape[1:]):
        raise ConfigError(f"--input rows have shape {list(x.shape[1:])}, the model was trained on "
                          f"{list(expected.shape[1:])}; give inputs shaped like the training data")
    if np.issubdtype(expected.dtype, np.integer) != np.issubdtype(x.dtype, np.integer):
        raise ConfigError(f"--input holds {x.dtype} values, the model was trained on {expected.dtype}")


def write(path: Path, predictions: dict[str, np.ndarray], class_names: list[str] | None) -> None:
    """Predictions as .npz (one array per key) or .csv (one row per input), written atomically."""
    import os
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    if path.suffix == ".npz":
        np.savez(tmp, **predictions)
    else:
        columns, header = _csv_columns(predictions, class_names)
        np.savetxt(tmp, np.column_stack(columns), delimiter=",", header=",".join(header), comments="", fmt="%.8g")
    os.replace(tmp, path)


def _csv_columns(predictions: dict[str, np.ndarray], class_names: list[str] | None):
    columns, header = [], []
    for key, value in predictions.items():
        value = value.reshape(len(value), -1)
        names = class_names if key == "probabilities" and class_names else range(value.shape[1])
        header += [key] if value.shape[1] == 1 else [f"{key}_{n}" for n in names]
        columns.append(value)
    return columns, header


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix not in OUTPUT_FORMATS:
        raise ConfigError(f"--output {output}: write predictions to a {' or '.join(OUTPUT_FORMATS)} file")
    if not output.parent.is_dir():
        raise ConfigError(f"--output {output}: the folder {output.parent} does not exist")
    from zoo import config, inference
    from zoo import experiment as ex
    from zoo.data import inputs, preprocess

    cfg = config.load_run_config(args.run_dir)
    trained = ex.load_run(args.run_dir, args.step, args.params or ex.reported_params(cfg))
    if not trained.exp.dataset.shardable:
        raise ConfigError(f"{trained.run_dir} is a graph model: predict reads arrays; call zoo.predict "
                          f"with a GraphsTuple from Python")
    preprocessing = preprocess.load(trained.run_dir)
    x = inputs.read_inputs(args.input, preprocessing)
    check_inputs(x, ex.batch_spec(trained.exp)["x"])
    predictions = inference.predict(trained, x)
    write(output, predictions, preprocessing.get("class_names"))
    print(f"wrote {len(x)} predictions to {output}")
    return 0
