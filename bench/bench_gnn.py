"""Cora full-batch GCN and GAT training epochs: zoo (JAX) vs torch_geometric, in one process.

Both sides run the papers' models and optimizers, each with sparse and with dense features;
speedup = torch_geometric time / zoo time. What is compared and how: bench/README.md. Needs
`pip install torch torch-geometric` (Cora ships with zoo: zoo/data/files/planetoid/cora.npz).

    python -m bench.bench_gnn                  # wall time, every library on all its default threads
    python -m bench.bench_gnn --threads 1      # one thread each, CPU time: fair on a busy machine
    python -m bench.bench_gnn --write-readme   # and write the report into README.md
"""
from __future__ import annotations

import argparse
import functools
import time

import jax
import numpy as np

from bench.common import (
    ROOT,
    Report,
    add_readme_flag,
    advancing,
    compile_time,
    cost_flops,
    limit_xla_threads,
    matmul_peak_flops,
    median_time,
    table,
    train_steps,
    write_readme_block,
)

CORA = ROOT / "zoo" / "data" / "files" / "planetoid" / "cora.npz"  # shipped with zoo


# ----------------------------------------------------------------------------- zoo
def zoo_epoch(name: str, sparse: bool, timed) -> dict:
    """The trainer's jitted step on the whole graph: ms per epoch, compile seconds, GFLOP/s."""
    _, state, step, batch_at = train_steps(f"cora_{name}",
                                           [f"data.path={CORA}", f"data.sparse_features={str(sparse).lower()}"])
    batch = batch_at(0)
    compile_s = compile_time(step, state, batch)
    flops = cost_flops(step, state, batch)
    seconds = timed(advancing(step, state, batch))
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


def pyg_epoch(name: str, sparse: bool, timed) -> dict:
    import torch
    import torch.nn.functional as F
    d = np.load(CORA, allow_pickle=False)
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


def rows(timed, peak: float) -> list[dict]:
    out = []
    for name in ["gcn", "gat"]:
        for sparse in (True, False):
            peer, ours = pyg_epoch(name, sparse, timed), zoo_epoch(name, sparse, timed)
            out.append({"model": name, "features": "sparse" if sparse else "dense", "pyg_ms": peer["epoch_ms"],
                        "zoo_ms": ours["epoch_ms"], "speedup": peer["epoch_ms"] / ours["epoch_ms"],
                        "zoo_compile_s": ours["compile_s"], "zoo_gflop/s": ours["gflop/s"],
                        "zoo_peak_%": 100 * ours["gflop/s"] * 1e9 / peak})
            print(out[-1], flush=True)  # progress
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="threads per library (CPU-time clock)")
    parser.add_argument("--number", type=int, default=20, help="epochs per timing sample")
    parser.add_argument("--repeats", type=int, default=5, help="timing samples (the median is shown)")
    add_readme_flag(parser, "gnn")
    args = parser.parse_args(argv)
    import torch
    import torch_geometric
    if args.threads is not None:
        limit_xla_threads(args.threads)  # before JAX's first computation
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.threads is not None else time.perf_counter
    timed = functools.partial(median_time, warmup=3, repeats=args.repeats, number=args.number, clock=clock)
    peak = matmul_peak_flops()
    measured = rows(timed, peak)
    say = Report()
    clock_name = f"CPU time, {args.threads} thread(s) each" if args.threads else "wall time, default threads"
    say(f"Cora full-batch training epoch ({clock_name}); jax {jax.__version__}, torch {torch.__version__}, "
        f"torch_geometric {torch_geometric.__version__}; matmul peak {peak / 1e9:.1f} GFLOP/s")
    say(table(measured))
    if args.write_readme:
        write_readme_block("gnn", str(say))


if __name__ == "__main__":
    main()
