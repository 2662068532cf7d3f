"""Neural ODE on the spiral task: zoo (diffrax, jitted) vs torchdiffeq (PyTorch, eager).

Time per training iteration with everything the same, and (--recipe) torchdiffeq's demo as
published against configs/spiral_node.yaml. What is compared and how: bench/README.md. Needs
`pip install torch torchdiffeq`.

    python -m bench.bench_node              # time per training iteration (about a minute)
    python -m bench.bench_node --recipe     # also torchdiffeq's demo recipe vs configs/spiral_node.yaml
    python -m bench.bench_node --recipe --no-speed --seed 1   # recipes only, another seed
    python -m bench.bench_node --recipe --write-readme        # and write the report into README.md
"""
from __future__ import annotations

import argparse
import tempfile
import time

import jax
import numpy as np

from bench.common import (
    ROOT,
    Report,
    add_readme_flag,
    advancing,
    load_config,
    median_time,
    table,
    train_steps,
    write_readme_block,
)
from zoo import experiment, train

CONFIG = "spiral_node"  # the shipped config
BATCH, ITERS = 20, 2000


# ----------------------------------------------------------------------------- zoo side
def zoo_timing(adjoint: str, batch: dict, clock) -> tuple[float, float, dict]:
    """The trainer's jitted step with gradients by `adjoint`: (seconds per iteration, seconds of
    the first call (compile and one step), {initial params, NFE of the forward solve})."""
    _, state, step, _ = train_steps(CONFIG, [f"model.adjoint={adjoint}"])
    params = jax.device_get(state["params"])
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    seconds = median_time(advancing(step, state, batch), warmup=2, repeats=5, number=20, clock=clock)
    return seconds, compile_s, {"params": params, "nfe": float(metrics["nfe"])}


# ----------------------------------------------------------------------------- torch side
def torch_field(params=None, std: float = 0.1):
    """The demo's ODEFunc: net(y^3), net = Linear(2, 50), Tanh, Linear(50, 2)."""
    import torch
    net = torch.nn.Sequential(torch.nn.Linear(2, 50), torch.nn.Tanh(), torch.nn.Linear(50, 2))
    with torch.no_grad():
        for linear, p in zip((net[0], net[2]), params or [None, None]):
            if p is None:   # the demo's init
                torch.nn.init.normal_(linear.weight, 0.0, std)
                torch.nn.init.zeros_(linear.bias)
            else:
                linear.weight.copy_(torch.tensor(np.asarray(p["kernel"]).T))
                linear.bias.copy_(torch.tensor(np.asarray(p["bias"])))

    class ODEFunc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, t, y):
            return self.net(y ** 3)

    return ODEFunc()


class Counted:
    """Wraps a torch vector field and counts its forward calls (NFE)."""

    def __init__(self, module):
        self.module, self.calls = module, 0

    def __call__(self, t, y):
        self.calls += 1
        return self.module(t, y)


def torch_timing(adjoint: bool, batch: dict, params, clock) -> tuple[float, dict]:
    import torch
    import torchdiffeq
    func = torch_field(params)
    odeint = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    opt = torch.optim.Adam(func.parameters(), lr=3e-3)
    y0 = torch.tensor(np.asarray(batch["x"]["y0"]))                       # [B, D]
    t = torch.tensor(np.asarray(batch["x"]["t"][0] - batch["x"]["t"][0, 0]))
    target = torch.tensor(np.asarray(batch["y"]).transpose(1, 0, 2))    # [T, B, D]

    def one():
        opt.zero_grad()
        pred = odeint(func, y0, t, method="dopri5", rtol=1e-7, atol=1e-9)
        loss = torch.mean((pred - target) ** 2)
        loss.backward()
        opt.step()
        return loss

    seconds = median_time(one, warmup=1, repeats=5, number=5, clock=clock)
    counted = Counted(func)
    with torch.no_grad():   # NFE of the forward solve, as zoo counts it
        torchdiffeq.odeint(counted, y0, t, method="dopri5", rtol=1e-7, atol=1e-9)
    return seconds, {"nfe": counted.calls}


def speed(clock) -> list[dict]:
    import torch
    torch.set_num_threads(1)   # tiny tensors: extra threads only add synchronisation
    exp = experiment.build(load_config(CONFIG))
    batch = exp.dataset.train_batch(0, 0, BATCH)  # host arrays, for both sides
    rows = []
    for zoo_adjoint, torch_adjoint, label in (("recursive_checkpoint", False, "backprop through solver"),
                                              ("backsolve", True, "adjoint (backsolve)")):
        zoo_s, compile_s, info = zoo_timing(zoo_adjoint, batch, clock)
        torch_s, tinfo = torch_timing(torch_adjoint, batch, info["params"]["field"]["layers"], clock)
        rows.append({"gradient": label, "zoo ms/iter": 1e3 * zoo_s, "torchdiffeq ms/iter": 1e3 * torch_s,
                     "speedup": torch_s / zoo_s, "zoo nfe": info["nfe"], "torch nfe": tinfo["nfe"],
                     "zoo compile s": compile_s})
    return rows


# ----------------------------------------------------------------------------- recipes
def torchdiffeq_demo(dataset, iters: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """torchdiffeq's examples/ode_demo.py training loop (RMSprop 1e-3, L1 loss); returns the
    learned trajectory from y(0) over the whole horizon and the training wall time."""
    import torch
    import torchdiffeq
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    func = torch_field()
    opt = torch.optim.RMSprop(func.parameters(), lr=1e-3)
    true_y, t = torch.tensor(dataset.y), torch.tensor(dataset.t)
    start = time.perf_counter()
    for _ in range(iters):
        s = rng.choice(len(t) - dataset.batch_time, BATCH, replace=False)
        batch_y = torch.stack([true_y[s + i] for i in range(dataset.batch_time)], 0)  # [T, B, D]
        opt.zero_grad()
        pred = torchdiffeq.odeint(func, true_y[s], t[:dataset.batch_time])
        torch.mean(torch.abs(pred - batch_y)).backward()
        opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        ys = torchdiffeq.odeint(func, true_y[0], t).numpy()
    return ys, seconds


def zoo_recipe(iters: int, seed: int) -> tuple[np.ndarray, dict]:
    """configs/spiral_node.yaml trained by zoo's trainer: the learned trajectory from y(0) over
    the whole horizon, and fit()'s summary."""
    cfg = load_config(CONFIG, [f"train.steps={iters}", f"train.seed={seed}", f"run.dir={tempfile.mkdtemp()}",
                               "run.plots=false"])
    trained = []
    summary = train.fit(cfg, hooks=[trained.append])
    (run,) = trained
    x = {"y0": run.exp.dataset.y[None, 0], "t": run.exp.dataset.t[None]}
    ys = jax.jit(run.model.apply)(run.params, x)  # [1, T, D]
    return np.asarray(ys[0]), summary


def recipes(iters: int, seed: int) -> list[dict]:
    from zoo.data.ode import SpiralConfig, load_spiral
    from zoo.figures.ode import plot_trajectories
    dataset = load_spiral(SpiralConfig())
    mse = lambda ys: float(np.mean((ys - dataset.y) ** 2))
    torch_ys, torch_s = torchdiffeq_demo(dataset, iters, seed)
    zoo_ys, summary = zoo_recipe(iters, seed)
    out = ROOT / "results" / f"spiral_node_vs_torchdiffeq_seed{seed}.png"
    out.parent.mkdir(exist_ok=True)
    plot_trajectories(out, dataset.t, dataset.y, {"zoo (configs/spiral_node.yaml)": zoo_ys,
                                                  "torchdiffeq demo": torch_ys})
    print(f"figure: {out}")
    return [{"recipe": "torchdiffeq ode_demo.py (RMSprop, L1)", "iterations": iters,
             "trajectory MSE [0, 25]": mse(torch_ys), "train wall s": torch_s},
            {"recipe": "zoo configs/spiral_node.yaml (Adam, cosine, MSE)", "iterations": iters,
             "trajectory MSE [0, 25]": mse(zoo_ys), "train wall s": summary["wall_time_s"]}]


def speed_report(say: Report, clock, clock_name: str) -> None:
    rows = speed(clock)
    say(f"spiral training iteration, batch {BATCH} windows of 10 points, dopri5 rtol 1e-7 atol 1e-9 "
        f"({clock_name} time, median)")
    say(table(rows))
    for r in rows:
        say(f"speedup ({r['gradient']}): zoo is {r['speedup']:.1f}x faster than torchdiffeq")


def recipe_report(say: Report, iters: int, seed: int) -> None:
    rows = recipes(iters, seed)
    say(f"recipes, {iters} iterations, seed {seed}:")
    say(table(rows))
    say(f"MSE ratio torchdiffeq demo / zoo: {rows[0]['trajectory MSE [0, 25]'] / rows[1]['trajectory MSE [0, 25]']:.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="store_true", help="also train both recipes end to end")
    parser.add_argument("--iters", type=int, default=ITERS, help="iterations of each recipe")
    parser.add_argument("--seed", type=int, default=0, help="seed of both recipes (init and batches)")
    parser.add_argument("--no-speed", action="store_true", help="skip the timing table")
    parser.add_argument("--cpu", action="store_true",
                        help="time with this process's CPU time (default: wall clock); ranks variants on a "
                             "busy machine, but counts XLA's idle worker threads against zoo")
    add_readme_flag(parser, "node")
    args = parser.parse_args(argv)
    say = Report()
    if not args.no_speed:
        speed_report(say, time.process_time if args.cpu else time.perf_counter, "CPU" if args.cpu else "wall")
    if args.recipe:
        if say.lines:
            say()  # a blank line after the timing report
        recipe_report(say, args.iters, args.seed)
    if args.write_readme:
        write_readme_block("node", str(say))


if __name__ == "__main__":
    main()
