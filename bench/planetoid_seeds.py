"""Planetoid test accuracy over seeds: the shipped GCN and GAT configs, through zoo.train.fit,
on Cora and CiteSeer's public split; prints mean +- std per (model, dataset) and the papers'
numbers (Kipf & Welling 2017: GCN 81.5 / 70.3; Velickovic et al. 2018: GAT 83.0 / 72.5).

    python bench/planetoid_seeds.py                       # 10 seeds, both models, both datasets
    python bench/planetoid_seeds.py --seeds 3 --configs cora_gcn --datasets cora
    python bench/planetoid_seeds.py --val                 # also validation accuracy (runs twice)

`train.seed` changes the initialisation and the dropout masks; the split is the public one.
Runs go to a temporary directory. Needs ../shared/data/planetoid/<name>.npz.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import table  # noqa: E402
from zoo import config, train  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "planetoid"
PAPER = {("cora_gcn", "cora"): 81.5, ("cora_gcn", "citeseer"): 70.3,
         ("cora_gat", "cora"): 83.0, ("cora_gat", "citeseer"): 72.5}


def accuracy(name: str, dataset: str, seed: int, run_dir: str, split: str, extra: list[str]) -> float:
    overrides = [f"data.path={DATA / f'{dataset}.npz'}", f"data.eval_split={split}", f"train.seed={seed}",
                 f"run.dir={run_dir}", f"run.name={name}_{dataset}_{split}_{seed}", "run.plots=false",
                 "train.log_every=100000", *extra]
    return 100 * train.fit(config.load(ROOT / "configs" / f"{name}.yaml", overrides))["eval_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--configs", nargs="+", default=["cora_gcn", "cora_gat"])
    parser.add_argument("--datasets", nargs="+", default=["cora", "citeseer"])
    parser.add_argument("--val", action="store_true", help="also report validation accuracy")
    parser.add_argument("overrides", nargs="*", help="extra key=value config overrides")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as run_dir:
        for name in args.configs:
            for dataset in args.datasets:
                row = {"config": name, "dataset": dataset, "seeds": args.seeds}
                for split in ["test", "val"] if args.val else ["test"]:
                    accs = [accuracy(name, dataset, s, run_dir, split, args.overrides) for s in range(args.seeds)]
                    std = statistics.stdev(accs) if len(accs) > 1 else 0.0
                    row[split] = f"{statistics.mean(accs):.1f} +- {std:.1f}"
                    print(f"{name} {dataset} {split}: " + " ".join(f"{a:.1f}" for a in accs), flush=True)
                row["paper (test)"] = PAPER.get((name, dataset), "")
                rows.append(row)
    print(table(rows))


if __name__ == "__main__":
    main()
