"""Example input files in the formats zoo reads, made from data that ships with its dependencies
(nothing is downloaded), for the shipped configs and the tests:

    python -m zoo.data.examples digits-png DIR          sklearn's 8x8 digits as DIR/<digit>/<i>.png
    python -m zoo.data.examples wine-csv FILE           sklearn's wine table, label column "label"
    python -m zoo.data.examples breast-cancer-csv FILE  sklearn's breast-cancer table, likewise
    python -m zoo.data.examples mnist1d-npz FILE        MNIST-1D as x, y, x_test, y_test
    python -m zoo.data.examples graphs-npz FILE         graph_cycles' graphs in the graph_npz format
    python -m zoo.data.examples arrowhead-tsv DIR       the shipped ArrowHead series as the UCR archive's
                                                        DIR/ArrowHead_TRAIN.tsv and DIR/ArrowHead_TEST.tsv
    python -m zoo.data.examples numbers-pairs DIR       0..999 in English and German words (num2words) as
                                                        DIR/pairs.tsv, and as the aligned DIR/source.txt, DIR/target.txt
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def digits_png(folder: Path) -> None:
    """One grey 8x8 PNG per image; sklearn's 0..16 intensities scaled to 0..255."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    for i, (image, label) in enumerate(zip(pixels, digits.target)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / str(label) / f"{i:04d}.png")


def table_csv(file: Path, loader) -> None:
    """An sklearn bundled table as CSV: its feature names as the header, then "label"."""
    table = loader()
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*table.feature_names, "label"])
        for row, label in zip(table.data, table.target):
            writer.writerow([*(repr(float(v)) for v in row), int(label)])


def mnist1d_npz(file: Path) -> None:
    import zoo.data.mnist1d as mnist1d

    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(file, **mnist1d.generate())


def graphs_npz(file: Path, num_graphs: int = 2500, seed: int = 0) -> None:
    """Random connected graphs labelled by their number of independent cycles (0, 1 or 2), as in
    data.name=graph_cycles, written in the graph_npz format (zoo.data.graph_npz)."""
    from zoo.data.graphs import random_cyclic_graph

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, num_graphs)
    sizes = rng.integers(8, 17, num_graphs)
    edges = [random_cyclic_graph(rng, int(n), int(k)) for n, k in zip(sizes, labels)]
    both_ways = [np.concatenate([e, e[:, ::-1]]) for e in edges]
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(file, n_node=sizes.astype(np.int32), n_edge=np.array([len(e) for e in both_ways], np.int32),
             nodes=np.ones((int(sizes.sum()), 1), np.float32), senders=np.concatenate([e[:, 0] for e in both_ways]),
             receivers=np.concatenate([e[:, 1] for e in both_ways]), labels=labels.astype(np.int32))


def ucr_tsv(folder: Path, name: str = "ArrowHead") -> None:
    """A shipped UCR dataset's _TRAIN/_TEST pair (zoo/data/files/ucr, .ts) in the UCR 2018
    archive's .tsv layout: one series per line, its class, then its values, tab-separated."""
    from zoo.data import timeseries

    shipped = Path(timeseries.__file__).parent / "files" / "ucr" / name
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("TRAIN", "TEST"):
        series = timeseries.read_ts(shipped / f"{name}_{split}.ts")
        rows = ["\t".join([label, *(repr(float(v)) for v in values[:, 0])])
                for values, label in zip(series.values, series.labels)]
        (folder / f"{name}_{split}.tsv").write_text("\n".join(rows) + "\n")


def number_pairs(folder: Path, count: int = 1000, source: str = "en", target: str = "de") -> None:
    """Sentence pairs for data.name=parallel_text: the numbers 0..count-1 written out in `source`
    and `target` words, one pair a line, as a TSV and as two aligned files."""
    from zoo.data.translation import words

    pairs = [(words(n, source), words(n, target)) for n in range(count)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    (folder / "source.txt").write_text("".join(f"{s}\n" for s, _ in pairs), encoding="utf-8")
    (folder / "target.txt").write_text("".join(f"{t}\n" for _, t in pairs), encoding="utf-8")


def make(kind: str, out: Path) -> None:
    from sklearn.datasets import load_breast_cancer, load_wine

    makers = {"digits-png": digits_png, "wine-csv": lambda p: table_csv(p, load_wine),
              "breast-cancer-csv": lambda p: table_csv(p, load_breast_cancer),
              "mnist1d-npz": mnist1d_npz, "graphs-npz": graphs_npz, "arrowhead-tsv": ucr_tsv,
              "numbers-pairs": number_pairs}
    makers[kind](out)


KINDS = ("digits-png", "wine-csv", "breast-cancer-csv", "mnist1d-npz", "graphs-npz", "arrowhead-tsv", "numbers-pairs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo.data.examples", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("out", type=Path,
                        help="the file (or, for digits-png, arrowhead-tsv and numbers-pairs, the folder) to write")
    args = parser.parse_args(argv)
    make(args.kind, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
