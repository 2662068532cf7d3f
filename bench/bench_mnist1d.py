"""MNIST-1D MLP and CNN: training throughput of zoo (JAX) vs PyTorch (eager), and the paper's recipe.

Both measured side by side in one process at the paper's shapes; the recipe is timed end to
end. What is compared and how: bench/README.md.

    python -m bench.bench_mnist1d                           # throughput table (about a minute)
    python -m bench.bench_mnist1d --recipe                  # also the 6000-step paper recipe
    python -m bench.bench_mnist1d --recipe --write-readme   # and write the report into README.md
"""
from __future__ import annotations

import argparse
import tempfile
import time

import jax

from bench.common import (
    Report,
    add_readme_flag,
    advancing,
    compile_time,
    cost_flops,
    load_config,
    matmul_peak_flops,
    median_time,
    peak_rss_mib,
    table,
    train_steps,
    write_readme_block,
)
from bench.peers import mnist1d_model
from zoo import train

BATCH, STEPS = 100, 6000
ZOO_MODELS = {
    "mlp": ["model.name=mlp", "model.depth=2", "model.width=100"],
    "cnn": ["model.name=cnn", "model.channels=[25,25,25]", "model.kernel_sizes=[5,3,3]",
            "model.strides=[2,2,2]", "model.padding=1"],
}


def bench_zoo(name: str, number: int) -> dict:
    """The trainer's jitted step on one batch: seconds per step, compile seconds, FLOPs per step."""
    _, state, step, batch_at = train_steps(None, [*ZOO_MODELS[name], "data.name=mnist1d", f"train.batch_size={BATCH}",
                                                  "optimizer.name=adam", "optimizer.learning_rate=1e-2"])
    batch = batch_at(0)
    compile_s = compile_time(step, state, batch)
    flops = cost_flops(step, state, batch)
    seconds = median_time(advancing(step, state, batch), warmup=20, repeats=5, number=number)
    return {"seconds": seconds, "compile_s": compile_s, "flops": flops}


def bench_torch(name: str, number: int) -> dict:
    import torch
    torch.manual_seed(0)
    model = mnist1d_model(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(BATCH, 40), torch.randint(0, 10, (BATCH,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def one():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return {"seconds": median_time(one, warmup=20, repeats=5, number=number)}


def throughput_rows(peak: float, number: int) -> list[dict]:
    rows = []
    for name in ZOO_MODELS:
        z, t = bench_zoo(name, number), bench_torch(name, number)
        rows.append({"model": name, "zoo steps/s": 1 / z["seconds"], "torch steps/s": 1 / t["seconds"],
                     "zoo/torch": t["seconds"] / z["seconds"], "zoo examples/s": BATCH / z["seconds"],
                     "compile s": z["compile_s"], "MFLOP/step": z["flops"] / 1e6,
                     "% matmul peak": 100 * z["flops"] / z["seconds"] / peak})
    return rows


def recipe_torch(name: str) -> tuple[float, float]:
    """The paper's recipe in PyTorch: 6000 Adam(1e-2) steps of batch 100; (seconds, accuracy)."""
    import torch

    from zoo.data import mnist1d
    a = mnist1d.generate()
    x, y = torch.from_numpy(a["x"]), torch.from_numpy(a["y"]).long()
    torch.manual_seed(0)
    model = mnist1d_model(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(STEPS):
        idx = torch.randint(0, len(x), (BATCH,))
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        acc = (model(torch.from_numpy(a["x_test"])).argmax(-1).numpy() == a["y_test"]).mean()
    return seconds, float(acc)


def recipe_zoo(name: str, shipped: bool) -> tuple[float, float]:
    """The same recipe through zoo's trainer (or the shipped config): (train seconds, accuracy)."""
    overrides = [f"run.dir={tempfile.mkdtemp()}", "run.plots=false", "train.log_every=100000", "train.eval_every=0"]
    if shipped:
        cfg = load_config(f"mnist1d_{name}", overrides)
    else:
        cfg = load_config(None, [*ZOO_MODELS[name], "data.name=mnist1d", f"train.batch_size={BATCH}",
                                 f"train.steps={STEPS}", "optimizer.learning_rate=1e-2", *overrides])
    summary = train.fit(cfg)
    return summary["wall_time_s"], summary["eval_accuracy"]


def recipe_rows() -> list[dict]:
    rows = []
    for name in ZOO_MODELS:
        ts, ta = recipe_torch(name)
        zs, za = recipe_zoo(name, shipped=False)
        ss, sa = recipe_zoo(name, shipped=True)
        rows.append({"model": name, "torch s": ts, "torch acc": ta, "zoo s (whole fit)": zs, "zoo acc": za,
                     "zoo/torch time": ts / zs, "shipped config s": ss, "shipped acc": sa})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", action="store_true", help="also time the paper's 6000-step recipe")
    p.add_argument("--number", type=int, default=200, help="steps per timing sample")
    add_readme_flag(p, "mnist1d")
    args = p.parse_args(argv)
    import torch
    say = Report()
    say(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)")
    peak = matmul_peak_flops()
    say(f"measured float32 matmul peak: {peak / 1e9:.1f} GFLOP/s\n")
    say(table(throughput_rows(peak, args.number)))
    if args.recipe:
        say(f"\npaper recipe, {STEPS} steps (zoo time includes data loading, compile and evaluation):")
        say(table(recipe_rows()))
    say(f"\npeak memory of this process: {peak_rss_mib():.0f} MiB")
    if args.write_readme:
        write_readme_block("mnist1d", str(say))


if __name__ == "__main__":
    main()
