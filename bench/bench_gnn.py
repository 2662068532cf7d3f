"""Full-batch GCN and GAT training epochs on Cora: zoo (JAX) vs torch_geometric, one process.

    python bench/bench_gnn.py                  # wall time, every library on all its default threads
    python bench/bench_gnn.py --threads 1      # one thread each, CPU time: fair on a busy machine

One epoch = one optimizer step on the whole graph (2708 nodes, 10556 edges, 1433 features).
Both sides run the papers' models at the same sizes (GCN 1433-16-7 with dropout 0.5; GAT 8 heads
x 8 then 1 head, dropout 0.6 on inputs and attention, ELU) and Adam with coupled L2 as in
configs/cora_gcn.yaml and configs/cora_gat.yaml. The zoo side is the trainer's own jitted
`train_step` (zoo.train.make_train_step) with its batch already on the device. The
torch_geometric side is its examples/gcn.py and gat.py (GCNConv(cached=True), GATConv) in eager
PyTorch. Each side runs twice: bag-of-words features stored sparse (zoo: BCOO, the Planetoid
loader's default; torch: a sparse COO tensor; the GCN paper's own code: only the ~1.3% stored
entries are dropped out and multiplied) and dense. speedup = torch_geometric time / zoo time.
Needs ../shared/data/planetoid/cora.npz and `pip install torch torch-geometric`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORA = ROOT.parent / "shared" / "data" / "planetoid" / "cora.npz"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="threads per library (CPU-time clock)")
    parser.add_argument("--number", type=int, default=20, help="epochs per timing sample")
    parser.add_argument("--repeats", type=int, default=5, help="timing samples (the median is shown)")
    return parser.parse_args()


ARGS = parse()
if ARGS.threads is not None:  # before jax starts: XLA reads its flags once
    os.environ["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={ARGS.threads}"

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(ROOT))
from bench.common import compile_time, cost_flops, matmul_peak_flops, median_time, table  # noqa: E402
from zoo import config, train  # noqa: E402

CLOCK = time.process_time if ARGS.threads is not None else time.perf_counter


def timed(step) -> float:
    return median_time(step, warmup=3, repeats=ARGS.repeats, number=ARGS.number, clock=CLOCK)


# ----------------------------------------------------------------------------- zoo
def zoo_epoch(name: str, sparse: bool) -> dict:
    cfg = config.load(ROOT / "configs" / f"cora_{name}.yaml",
                      [f"data.path={CORA}", f"data.sparse_features={str(sparse).lower()}"])
    exp = train.setup(cfg)
    state, shardings = train.init_state(exp)
    step, batch = train.make_train_step(exp, shardings), train.train_batch(exp, 0)
    compile_s = compile_time(step, state, batch)
    flops = cost_flops(step, state, batch)
    live = [state]

    def epoch():
        live[0], metrics = step(live[0], batch)
        return metrics

    seconds = timed(epoch)
    return {"epoch_ms": 1e3 * seconds, "compile_s": compile_s, "gflop/s": flops / seconds / 1e9}


# ----------------------------------------------------------------------------- torch_geometric
def dropout(x, rate: float, training: bool):
    """F.dropout, or on the stored values of a sparse COO tensor (same distribution)."""
    import torch
    import torch.nn.functional as F
    if not x.is_sparse:
        return F.dropout(x, rate, training)
    return torch.sparse_coo_tensor(x.indices(), F.dropout(x.values(), rate, training), x.shape).coalesce()


def pyg_model(name: str, d_in: int, num_classes: int):
    import torch
    import torch.nn.functional as F
    from torch_geometric.nn import GATConv, GCNConv

    class GCN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = GCNConv(d_in, 16, cached=True), GCNConv(16, num_classes, cached=True)

        def forward(self, x, edge_index):
            x = F.relu(self.conv1(dropout(x, 0.5, self.training), edge_index))
            return self.conv2(F.dropout(x, 0.5, self.training), edge_index)

    class GAT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = GATConv(d_in, 8, heads=8, dropout=0.6)
            self.conv2 = GATConv(64, num_classes, heads=1, concat=False, dropout=0.6)

        def forward(self, x, edge_index):
            x = F.elu(self.conv1(dropout(x, 0.6, self.training), edge_index))
            return self.conv2(F.dropout(x, 0.6, self.training), edge_index)

    model = GCN() if name == "gcn" else GAT()
    if name == "gcn":  # L2 on the first layer only (Kipf & Welling)
        groups = [{"params": model.conv1.parameters(), "weight_decay": 5e-4},
                  {"params": model.conv2.parameters(), "weight_decay": 0.0}]
        return model, torch.optim.Adam(groups, lr=0.01)
    return model, torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=5e-4)


def pyg_epoch(name: str, sparse: bool) -> dict:
    import torch
    import torch.nn.functional as F
    if ARGS.threads is not None:
        torch.set_num_threads(ARGS.threads)
    d = np.load(CORA)
    x = np.unpackbits(d["features"], axis=1)[:, :int(d["num_features"])].astype(np.float32)
    x = torch.tensor(x / np.maximum(x.sum(1, keepdims=True), 1.0))
    x = x.to_sparse_coo().coalesce() if sparse else x
    edge_index = torch.tensor(np.stack([d["senders"], d["receivers"]]), dtype=torch.long)
    y, train_index = torch.tensor(d["labels"], dtype=torch.long), torch.tensor(d["train_index"], dtype=torch.long)
    model, optimizer = pyg_model(name, x.shape[1], int(d["labels"].max()) + 1)
    model.train()

    def epoch():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x, edge_index)[train_index], y[train_index])
        loss.backward()
        optimizer.step()
        return loss

    return {"epoch_ms": 1e3 * timed(epoch)}


def main() -> None:
    import torch
    import torch_geometric
    peak = matmul_peak_flops()
    rows = []
    for name in ["gcn", "gat"]:
        for sparse in (True, False):
            peer, ours = pyg_epoch(name, sparse), zoo_epoch(name, sparse)
            rows.append({"model": name, "features": "sparse" if sparse else "dense", "pyg_ms": peer["epoch_ms"],
                         "zoo_ms": ours["epoch_ms"], "speedup": peer["epoch_ms"] / ours["epoch_ms"],
                         "zoo_compile_s": ours["compile_s"], "zoo_gflop/s": ours["gflop/s"],
                         "zoo_peak_%": 100 * ours["gflop/s"] * 1e9 / peak})
            print(rows[-1], flush=True)
    clock = f"CPU time, {ARGS.threads} thread(s) each" if ARGS.threads else "wall time, default threads"
    print(f"Cora full-batch training epoch ({clock}); jax {jax.__version__}, torch {torch.__version__}, "
          f"torch_geometric {torch_geometric.__version__}; matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(table(rows))


if __name__ == "__main__":
    main()
