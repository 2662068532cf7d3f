"""Recurrent family: training throughput and forward latency of our JAX LSTM/GRU against
torch.nn.LSTM / torch.nn.GRU (PyTorch's fused CPU kernels), same shapes, same optimizer.

    python bench/bench_recurrent.py                       # all rows, default variants
    python bench/bench_recurrent.py --rows gru_paper --variants reference fused fused:unroll=8

One training step = forward, cross-entropy on a linear head, backward, Adam update (torch:
zero_grad/backward/step; JAX: one jitted, donated step). Rows:
  lstm_128    LSTM, B=128, T=40, D=128, H=128, head on the last hidden state
  gru_128     GRU,  same shapes
  gru_paper   MNIST-1D paper's GRU: B=100, T=40, D=1, H=6, bidirectional, head on all steps
  lstm_paper  the same with an LSTM
A variant is `impl[:unroll=N][:bf16=1]` (impl: reference | fused; bf16: bfloat16 compute,
float32 params). ratio = torch time / JAX time, so
>= 1.0 means JAX is at least as fast. XLA flags are read from the environment (XLA_FLAGS) as
usual, so compare flag settings by running the script once per setting.

On a shared machine use `--threads 1 --clock cpu`: one thread in each library and CPU time
of this process only, which ranks variants even while other jobs run; report wall time
(the default) from a quiet machine.

Measured on the 2-core AMD EPYC (Zen 4) with `--threads 1 --clock cpu`, while other jobs ran
(load ~14; ms per step, ratio = torch / JAX):
  row         torch train/fwd   reference train/fwd   ratio        fused train/fwd   ratio
  lstm_128    66.8 / 15.6       106 / 18.5            0.63 / 0.85  106 / 19.5        0.63 / 0.80
  gru_128     52.3 / 19.3       81.2 / 14.2           0.64 / 1.36  79.3 / 15.2       0.66 / 1.27
  gru_paper   13.6 / 2.20       1.42 / 0.63           9.6 / 3.5    2.35 / 0.84       5.8 / 2.6
  lstm_paper  5.46 / 1.35       1.76 / 0.54           3.1 / 2.5    3.06 / 1.00       1.8 / 1.4
What each idea did (same setting; lstm_128 unless said):
- One [B, 4H] gate array sliced inside the loop: XLA CPU runs a fusion that reads several
  slices of one buffer ~5x slower (LSTM gate math 240 us/step vs 43 us on separate arrays).
  One array per gate (hoisted projection split outside the loop, one matmul per gate in the
  fused path): forward 27 -> 19.5 ms (LSTM), 23 -> 14.7 ms (GRU, now 1.3x torch).
- Custom VJP with recomputation (dW_hh as one matmul after the loop): no gain at H=128
  (102-110 vs 100-106 ms), slower at H=6 (2.35 vs 1.42 ms). Saving the pointwise pullbacks
  instead of recomputing: slower (112 vs 102 ms). Both directions in one loop step: no gain.
- unroll=2/4/8: no gain or slower (lstm_128 106 -> 126 ms at 4); unroll=40 at H=6 compiles
  for 164 s and runs slower (7.8 vs 1.5 ms).
- bfloat16 compute (float32 params): slower, 98 -> 133 ms (lstm_128), 2.6 -> 10.1 ms (gru_paper).
- XLA flags (xla_cpu_use_onednn, xla_cpu_use_xnnpack, xla_cpu_experimental_xnn_fusion_type=dot,
  xla_cpu_enable_fast_math, xla_cpu_prefer_vector_width=512, ynn fusion off): within noise.
- Time-major input handed in directly vs transposed inside: no difference (99 vs 102 ms).
Still short at H=128 training (~0.65x): the accounted parts (projection 10 ms, loop forward
15 ms, loop backward 21 ms + dW 11 ms, projection backward 10 ms) sum to ~67 ms of ~100.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import xla_threads_from_argv  # noqa: E402

xla_threads_from_argv()  # before jax is imported: XLA reads its flags once

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from bench.common import compile_time, median_time, table  # noqa: E402
from zoo.models import build  # noqa: E402

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


def jax_step_times(row, variant: dict, repeats: int) -> dict:
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

    return {"train_ms": 1e3 * median_time(run, repeats=repeats),
            "fwd_ms": 1e3 * median_time(lambda: forward(state[0][0], x), repeats=repeats),
            "compile_s": compile_s}


def torch_step_times(row, repeats: int) -> dict:
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

    return {"train_ms": 1e3 * median_time(train, repeats=repeats),
            "fwd_ms": 1e3 * median_time(infer, repeats=repeats)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--variants", nargs="+", default=["reference", "fused"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="threads per library")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args(argv)
    global median_time
    median_time = functools.partial(median_time, clock=time.process_time if args.clock == "cpu" else time.perf_counter)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    results = []
    for name in args.rows:
        row = ROWS[name]
        torch_t = None if args.no_torch else torch_step_times(row, args.repeats)
        if torch_t:
            results.append({"row": name, "impl": "torch", **torch_t})
        for text in args.variants:
            times = jax_step_times(row, parse_variant(text), args.repeats)
            if torch_t:
                times["train_ratio"] = torch_t["train_ms"] / times["train_ms"]
                times["fwd_ratio"] = torch_t["fwd_ms"] / times["fwd_ms"]
            results.append({"row": name, "impl": text, **times})
            print(table(results[-1:]), flush=True) if len(results) < 3 else None
    print()
    print(table(results, ["row", "impl", "train_ms", "fwd_ms", "train_ratio", "fwd_ratio", "compile_s"]))


if __name__ == "__main__":
    main()
