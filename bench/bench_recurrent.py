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

Measured on the 2-core AMD EPYC (Zen 4), quiet machine, wall clock, `--repeats 9`
(ms per step, ratio = torch / JAX; train ratio is the goal, >= 1.0):
  row         torch train/fwd   reference train/fwd   ratio         fused train/fwd   ratio
  lstm_128    25.9 / 7.96       35.8 / 15.2           0.72 / 0.52   45.9 / 12.9       0.56 / 0.62
  gru_128     30.8 / 10.7       27.6 / 11.8           1.12 / 0.90   32.7 / 10.2       0.94 / 1.04
  gru_paper   14.2 / 2.29       1.23 / 0.94           11.5 / 2.4    2.46 / 0.79       5.8 / 2.9
  lstm_paper  4.81 / 1.68       1.41 / 0.80           3.4 / 2.1     3.63 / 0.95       1.3 / 1.8
What each idea did (lstm_128 unless said):
- glibc malloc keeping freed memory (zoo.cpu.keep_freed_memory, applied by bench.common and
  train.py): XLA CPU's per-step temporaries were mmapped and page-faulted afresh every step.
  Reference train 65 -> 47 ms; torch.nn.LSTM in the same process 36 -> 27 ms, so the ratio
  barely moved, but every JAX model gains (the transformer 14% more tokens/s).
- x_t W_ih inside the loop instead of one hoisted [T*B, D] x [D, G] projection: 47 -> 36 ms
  (GRU 29 -> 24). A loop fusion that dynamic-slices the precomputed [T, B, G] array and
  slices its gates runs ~5x slower (159 vs 33 us per step) than one reading separate arrays;
  an optimization barrier does not survive XLA CPU's pipeline. The fused path keeps the
  hoisted projection as gate-wise arrays, hence its 4 slice copies per layer.
- Eigen dots instead of YNNPACK (XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=): at
  B=128 the in-loop [128, 128] x [128, 512] product runs on both threads (153 vs 196 us);
  GRU train 28 -> 24 ms, LSTM unchanged; at B=32 it is slower (GRU 9.4 -> 15.8 ms, the
  charlm_lstm config 44 -> 33 steps/s), so it stays an XLA_FLAGS choice, not a default.
- Custom VJP: the generic one (fused path: recompute the cell's pullback, dW_hh as one
  matmul after the loop) is slower than autodiff everywhere above. An LSTM-specific one
  (hand-derived gate gradients, dW_ih, dW_hh and db as three matmuls after the loop, gates
  saved gate-wise) cut the loop's matmul time 19 -> 12.6 ms but measured 34-39 ms in all:
  XLA CPU splits the saved gates into one fusion and one dynamic-update-slice each, ~140
  thunks per time step, and per-thunk overhead (~8 ms of 34 between thunks) eats the gain.
- Earlier, with `--threads 1 --clock cpu` under load: one array per gate in the loop (fwd
  27 -> 19.5 ms then); unroll=2/4/8 no gain or slower (unroll=40 at H=6 compiles for 164 s);
  bfloat16 compute slower (98 -> 133 ms); XLA flags xla_cpu_use_onednn, xla_cpu_use_xnnpack,
  xla_cpu_enable_fast_math, xla_cpu_prefer_vector_width=512 within noise; time-major input
  handed in directly vs transposed inside: no difference.
Still short at lstm_128 (0.72x): torch runs the whole sequence through oneDNN's fused LSTM
primitive (one call forward, one backward). Our step is ~18 ms of matmuls (5 per time step,
~180 GFLOP/s, close to this machine's 2-core peak) plus ~7,500 small XLA thunks.
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
    parser.add_argument("--variants", nargs="+", default=["scan", "fused"])
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
