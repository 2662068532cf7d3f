"""GPT training throughput: zoo (JAX) vs nanoGPT's model in PyTorch, and FLOP/s vs matmul peak.

PyTorch runs eager on the CPU; the peak is the machine's measured float32 matmul rate. Rows and
what is compared: bench/README.md.

    python -m bench.bench_transformer                      # both rows
    python -m bench.bench_transformer --rows d512 --threads 1 --clock cpu   # ranks variants on a busy machine
    python -m bench.bench_transformer --write-readme       # and write the report into README.md

ratio = torch seconds per step / JAX seconds per step (>= 1.5 is the goal).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.common import (
    Report,
    add_readme_flag,
    compile_time,
    cost_flops,
    limit_xla_threads,
    matmul_peak_flops,
    median_time,
    table,
    write_readme_block,
)
from bench.peers import nanogpt_model
from zoo.models import build

ROWS = {  # name: (B, T, D, layers, heads, vocab)
    "shakespeare": (12, 64, 128, 4, 4, 65),
    "d512": (8, 256, 512, 4, 8, 65),
}


def data(b, t, v, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, v, (b, t + 1)).astype(np.int32)
    return tokens[:, :-1], tokens[:, 1:]


# ----------------------------------------------------------------------------- JAX
def jax_step(row):
    b, t, d, layers, heads, v = row
    model = build("gpt", vocab_size=v, num_layers=layers, num_heads=heads, d_model=d)
    x, y = map(jnp.asarray, data(b, t, v))
    params = model.init(jax.random.key(0), x)
    decay = jax.tree.map(lambda p: p.ndim >= 2, params)
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adamw(1e-3, b1=0.9, b2=0.99, weight_decay=0.1, mask=decay))

    def loss(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, x), y).mean()

    def train_step(state, x, y):
        params, opt_state = state
        value, grads = jax.value_and_grad(loss)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    step = jax.jit(train_step, donate_argnums=0)
    state = (params, tx.init(params))
    seconds_compile = compile_time(step, state, x, y)
    flops = cost_flops(step, state, x, y)
    holder = {"state": state}

    def run():
        holder["state"], value = step(holder["state"], x, y)
        return value

    return run, seconds_compile, flops


# ----------------------------------------------------------------------------- PyTorch
def torch_step(row, threads):
    import torch
    from torch.nn import functional as F

    if threads:
        torch.set_num_threads(threads)
    b, t, d, layers, heads, v = row

    torch.manual_seed(0)
    model = nanogpt_model(v, t, d, layers, heads, gelu="tanh")   # GELU with the tanh approximation
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
    x, y = (torch.from_numpy(a.astype(np.int64)) for a in data(b, t, v))

    def run():
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, v), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    return run


# ----------------------------------------------------------------------------- main
def measure(name, threads, clock, number):
    row = ROWS[name]
    b, t = row[0], row[1]
    run_jax, seconds_compile, flops = jax_step(row)
    jax_s = median_time(run_jax, number=number, clock=clock)
    result = {"row": name, "tokens/step": b * t, "jax tok/s": b * t / jax_s,
              "compile s": seconds_compile, "GFLOP/step": flops / 1e9, "jax GFLOP/s": flops / jax_s / 1e9}
    try:
        run_torch = torch_step(row, threads)
    except ImportError:
        return result
    torch_s = median_time(run_torch, number=number, clock=clock)
    result.update({"torch tok/s": b * t / torch_s, "ratio": torch_s / jax_s})
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--threads", type=int, default=0, help="threads per library; 0: library default")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    p.add_argument("--number", type=int, default=10, help="steps per timing sample")
    add_readme_flag(p, "transformer")
    args = p.parse_args(argv)
    if args.threads:
        limit_xla_threads(args.threads)  # before JAX's first computation
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    say = Report()
    peak = matmul_peak_flops()
    say(f"jax {jax.__version__}, {os.cpu_count()} CPUs, clock={args.clock}, threads={args.threads or 'default'}")
    say(f"measured float32 matmul peak (1024^3, XLA): {peak / 1e9:.1f} GFLOP/s\n")
    rows = [measure(name, args.threads, clock, args.number) for name in args.rows]
    for r in rows:
        r["% matmul peak"] = 100 * r["jax GFLOP/s"] * 1e9 / peak
    say(table(rows))
    for r in rows:
        if "ratio" in r:
            say(f"{r['row']}: JAX {r['ratio']:.2f}x PyTorch tokens/s (goal >= 1.5); "
                f"{r['% matmul peak']:.0f}% of matmul peak" + (" (goal >= 40%)" if r["row"] == "d512" else ""))
    if args.write_readme:
        write_readme_block("transformer", str(say))
    return 0 if all(math.isfinite(r["jax tok/s"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
