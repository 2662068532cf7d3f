"""`zoo predict RUN --input FILE --output FILE [--overwrite]`: predictions of a trained run on new inputs.

The input is read in the formats the data options read (.npz, .npy, .csv/.tsv with the training
columns, an image file or folder), checked as training files are (zoo.data.validate), and goes
through the preprocessing the run stored (the standardisation, reshaping and resizing fitted on
its training split). The output (.npz or .csv) holds the class (and its name, when the run has
class names) and each class's probability for classifiers, the outputs for regression, log p(x)
for density models, and for images the path of each image. Language models are sampled with
`zoo generate` instead. A run of many replicas (train.seeds) predicts as their deep ensemble:
the mean of their probabilities (or outputs), with the replicas' standard deviation beside it
(probabilities_std, output_std); --replica I predicts with one of them.

A translation run (a model with ModelEntry.translate) reads a UTF-8 text file, one source text a
line, and writes a .txt of their translations, line for line, by the config's beam search
(model.beam_size; 1 is greedy); a run of many replicas translates with --replica (default 0).

The output is written atomically (a temporary file in its folder, then renamed); it is never
the input, never a folder, and replaces an existing file only with --overwrite. The command
runs in four steps, each replaceable: load the run, read the inputs, compute, write.
"""
from __future__ import annotations

import argparse
import os
import tempfile
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
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--params", choices=["last", "best"], default=None,
                   help="the checkpoint's last params or the selected ones (default: what the summary used)")
    p.add_argument("--replica", type=int, default=None,
                   help="of a run of many replicas (train.seeds/sweep), this one (default: their ensemble)")
    p.set_defaults(run=run)
    return p


# ----------------------------------------------------------------------------- the four steps
def load(args: argparse.Namespace) -> list:
    """The trained runs predict uses: the run, one replica, or every replica of a run of many."""
    from zoo import config, schema
    from zoo import experiment as ex

    cfg = config.load_run_config(args.run_dir)
    params = args.params or ex.reported_params(cfg)
    if args.replica is None and schema.is_stacked(cfg):
        runs = ex.load_runs(args.run_dir, args.step, params)
    else:
        runs = [ex.load_run(args.run_dir, args.step, params, replica=args.replica)]
    trained = runs[0]
    if not trained.exp.dataset.shardable:
        raise ConfigError(f"{trained.run_dir} is a graph model: predict reads arrays; call zoo.predict "
                          f"with a GraphsTuple from Python")
    if trained.exp.dataset.task == "language_model":
        raise ConfigError(f"{trained.run_dir} is a language model: sample from it with zoo generate")
    return runs


def read(path: str, trained, preprocessing: dict):
    """The inputs (zoo.data.inputs.Inputs), checked against what the model was trained on."""
    from zoo import experiment as ex
    from zoo.data import inputs

    new = inputs.read_inputs(path, preprocessing)
    check_inputs(new.x, ex.batch_spec(trained.exp)["x"], new.file)
    return new


def compute(runs: list, new) -> dict[str, np.ndarray]:
    """One run's predictions, or the deep ensemble's of several replicas."""
    from zoo import inference
    return inference.predict(runs[0], new.x) if len(runs) == 1 else inference.predict_ensemble(runs, new.x)


def run(args: argparse.Namespace) -> int:
    from zoo.data import preprocess, validate

    if translates(args.run_dir):
        return translate(args)

    output = validate.output_file(args.output, args.input, OUTPUT_FORMATS, args.overwrite)
    validate.existing(args.input, "--input", "an .npz, .npy, .csv, .tsv or image file or folder")
    runs = load(args)
    preprocessing = preprocess.load(runs[0].run_dir)
    new = read(args.input, runs[0], preprocessing)
    predictions = compute(runs, new)
    class_names = preprocessing.get("class_names")
    write(output, table(predictions, class_names, new.paths), class_names)
    rows = len(new.x["lengths"]) if isinstance(new.x, dict) else len(new.x)   # {"x", "lengths"}: series
    print(f"wrote {rows} predictions to {output}")
    return 0


def translates(run_dir: str) -> bool:
    """Whether the run's model translates text (its registry entry has `translate`)."""
    from zoo import config
    from zoo.models import entry
    return entry(config.load_run_config(run_dir).model_name).translate is not None


def translate(args: argparse.Namespace) -> int:
    """Lines of --input translated, line for line, into the .txt --output."""
    from zoo import experiment as ex
    from zoo import translating
    from zoo.data import validate
    from zoo.rundir import atomic_write

    output = validate.output_file(args.output, args.input, (".txt",), args.overwrite)
    source = validate.existing(args.input, "--input", "a UTF-8 text file, one source text a line")
    lines = validate.read_text(source).splitlines()
    trained = ex.load_one(args.run_dir, args.step, args.params or "last", args.replica)
    atomic_write(output, "".join(f"{line}\n" for line in translating.translate(trained, lines)))
    print(f"wrote {len(lines)} translations to {output}")
    return 0


# ----------------------------------------------------------------------------- checks and output
def check_inputs(x: np.ndarray, expected, file: Path) -> None:
    """One line naming the file when new inputs differ in shape or kind from the training inputs."""
    if isinstance(x, dict):   # series of unequal lengths, {"x", "lengths"}: the series' layout matters
        x, expected = x["x"], expected["x"]
    if tuple(x.shape[1:]) != tuple(expected.shape[1:]):
        raise ConfigError(f"{file}: rows have shape {list(x.shape[1:])}, the model was trained on "
                          f"{list(expected.shape[1:])}; give inputs shaped like the training data")
    if np.issubdtype(expected.dtype, np.integer) != np.issubdtype(x.dtype, np.integer):
        raise ConfigError(f"{file} holds {x.dtype} values, the model was trained on {expected.dtype}")


def table(predictions: dict[str, np.ndarray], class_names: list[str] | None,
          paths: list[str] | None) -> dict[str, np.ndarray]:
    """What is written, one row per input: `path` (images), then the predictions, with
    `class_name` after `class` when the run has class names."""
    out = {} if paths is None else {"path": np.array(paths)}
    for key, value in predictions.items():
        out[key] = value
        if key == "class" and class_names:
            out["class_name"] = np.array(class_names)[value]
    return out


def write(path: Path, columns: dict[str, np.ndarray], class_names: list[str] | None = None) -> None:
    """The columns as .npz (one array each) or .csv (a header, one row per input; a column of
    several values per row as KEY_<class name or index>), written to
    a temporary file in the output's folder and renamed over `path` (atomic: a reader never sees
    half a file; a failure leaves no temporary file behind)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if path.suffix.lower() == ".npz":
                np.savez(f, **columns)
            else:
                f.write(_csv(columns, class_names).encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _csv(columns: dict[str, np.ndarray], class_names: list[str] | None) -> str:
    import csv
    import io

    header, cells = [], []
    for key, value in columns.items():
        value = value.reshape(len(value), -1)
        names = class_names if key.startswith("probabilities") and class_names else range(value.shape[1])
        header += [key] if value.shape[1] == 1 else [f"{key}_{n}" for n in names]
        cells += [[_cell(v) for v in value[:, i].tolist()] for i in range(value.shape[1])]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*cells))
    return buf.getvalue()


def _cell(value) -> str:
    return f"{value:.8g}" if isinstance(value, float) else str(value)
