"""LSTM/GRU training and forward time: zoo (JAX) vs torch.nn.LSTM/GRU, same shapes and optimizer.

PyTorch runs its fused CPU kernels. Rows, variants and the measurement history: bench/README.md.

    python -m bench.bench_recurrent                       # all rows, default variants
    python -m bench.bench_recurrent --rows gru_paper --variants scan fused fused:unroll=8
    python -m bench.bench_recurrent --threads 1 --clock cpu   # ranks variants on a busy machine
    python -m bench.bench_recurrent --write-readme        # and write the report into README.md

A variant is `impl[:unroll=N][:bf16=1]` (impl: scan | fused; bf16: bfloat16 compute, float32
params). ratio = torch time / JAX time, so >= 1.0 means JAX is at least as fast.
"""
from __future__ import annotations

import argparse
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.common import Report, add_readme_flag, compile_time, limit_xla_threads, median_time, table, write_readme_block
from zoo.models import build

ROWS = {  # name: (cell, B, T, D, H, bidirectional, readout)
    "lstm_128": ("lstm", 128, 40, 128, 128, False, "last"),
    "gru_128": ("gru", 128, 40, 128, 128, False, "last"),
    "gru_paper": ("gru", 100, 40, 1, 6, True, "flatten"),
    "lstm_paper": ("lstm", 100, 40, 1, 6, True, "flatten"),
}
NUM_CLASSES = 10


def parse_variant(text: str) -> dict:
    impl, *options = text.split(":")
    kwargs = {"impl": impl}
    for option in options:
        key, value = option.split("=")
        kwargs[key] = int(value)
    return kwargs


def data(b, t, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((b, t, d)).astype(np.float32), rng.integers(0, NUM_CLASSES, b).astype(np.int32)


def jax_step_times(row, variant: dict, timed) -> dict:
    cell, b, t, d, h, bidirectional, readout = row
    variant = dict(variant)
    dtype = jnp.bfloat16 if variant.pop("bf16", 0) else jnp.float32  # compute dtype; params stay f32
    model = build(cell, num_outputs=NUM_CLASSES, hidden_size=h, bidirectional=bidirectional,
                  readout=readout, **variant)
    x, y = map(jnp.asarray, data(b, t, d))
    params = model.init(jax.random.key(0), x)
    tx = optax.adam(1e-3)

    def logits(params, x):
        compute = jax.tree.map(lambda p: p.astype(dtype), params)
        return model.apply(compute, x.astype(dtype)).astype(jnp.float32)

    def loss(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()

    def train_step(state, x, y):
        params, opt_state = state
        grads = jax.grad(loss)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    step = jax.jit(train_step, donate_argnums=0)
    forward = jax.jit(logits)
    state = [(params, tx.init(params))]
    compile_s = compile_time(step, state[0], x, y)

    def run():
        state[0] = step(state[0], x, y)
        return state[0]

    return {"train_ms": 1e3 * timed(run), "fwd_ms": 1e3 * timed(lambda: forward(state[0][0], x)),
            "compile_s": compile_s}


def torch_step_times(row, timed) -> dict:
    import torch
    cell, b, t, d, h, bidirectional, readout = row
    torch.manual_seed(0)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](d, h, batch_first=True, bidirectional=bidirectional)
    width = h * (2 if bidirectional else 1) * (t if readout == "flatten" else 1)
    head = torch.nn.Linear(width, NUM_CLASSES)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], 1e-3)
    x, y = (torch.tensor(a) for a in data(b, t, d))
    y = y.long()

    def forward():
        out, _ = rnn(x)
        return head(out.reshape(b, -1) if readout == "flatten" else out[:, -1])

    def train():
        loss = torch.nn.functional.cross_entropy(forward(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            return forward()

    return {"train_ms": 1e3 * timed(train), "fwd_ms": 1e3 * timed(infer)}


def row_results(name: str, variants: list[str], timed, with_torch: bool) -> list[dict]:
    """One row's times: torch's (unless with_torch is false), then each JAX variant's."""
    torch_t = torch_step_times(ROWS[name], timed) if with_torch else None
    results = [{"row": name, "impl": "torch", **torch_t}] if torch_t else []
    for text in variants:
        times = jax_step_times(ROWS[name], parse_variant(text), timed)
        if torch_t:
            times["train_ratio"] = torch_t["train_ms"] / times["train_ms"]
            times["fwd_ratio"] = torch_t["fwd_ms"] / times["fwd_ms"]
        results.append({"row": name, "impl": text, **times})
        print(results[-1], flush=True)  # progress
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--variants", nargs="+", default=["scan", "fused"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--number", type=int, default=10, help="steps per timing sample")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="threads per library")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    add_readme_flag(parser, "recurrent")
    args = parser.parse_args(argv)
    if args.threads:
        limit_xla_threads(args.threads)  # before JAX's first computation
        import torch
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    timed = functools.partial(median_time, repeats=args.repeats, number=args.number, clock=clock)
    say = Report()
    say(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    results = [r for name in args.rows for r in row_results(name, args.variants, timed, not args.no_torch)]
    say(table(results, ["row", "impl", "train_ms", "fwd_ms", "train_ratio", "fwd_ratio", "compile_s"]))
    if args.write_readme:
        write_readme_block("recurrent", str(say))


if __name__ == "__main__":
    main()
