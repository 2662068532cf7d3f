"""Accelerator throughput: tokens/s, step time and MFU of a GPT training step (GPT-2 small,
124M params, bfloat16, context 1024 by default) on whatever device JAX finds, one table.

    python -m bench.bench_accelerator                          # GPT-2 small, B=16, T=1024
    python -m bench.bench_accelerator --steps 50 --batch 32
    python -m bench.bench_accelerator --size tiny --seq-len 64 --batch 2 --steps 2   # CPU smoke

The step is the trainer's own (zoo.steps.make_train_step: AdamW, clipping, bf16 compute with
float32 params) on the text dataset, with vocabulary 50304 as nanoGPT pads GPT-2's. Attention
is cuDNN's fused kernel on GPUs, XLA's fused path on TPUs, the explicit one on CPUs. FLOPs per
step come from XLA's cost analysis of the compiled program (6N per token plus attention by
formula when the backend gives none); MFU divides the achieved FLOP/s by the chip's dense
bf16 peak from the vendor's data sheet (none known for CPUs). Installs nothing, downloads
nothing.
"""
from __future__ import annotations

import argparse
import sys
import time

# dense bf16 matmul peak per device, FLOP/s (vendor data sheets), keyed by a device_kind prefix
PEAK_BF16 = {"NVIDIA H100": 989e12, "NVIDIA H200": 989e12, "NVIDIA A100": 312e12, "NVIDIA B200": 2250e12,
             "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5": 459e12, "TPU v6 lite": 918e12}


def arguments(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20, help="timed steps after two warm-up steps")
    p.add_argument("--size", default="small", help="GPT size row (zoo.models.transformer.SIZES)")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--batch", type=int, default=16, help="global batch (sequences per step)")
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--attention", default=None, help="auto|fused|cudnn|explicit (default: cudnn on GPU)")
    p.add_argument("--remat", default="none", choices=["none", "block", "dots"])
    return p.parse_args(argv)


def config(args, platform: str):
    from zoo import config as zoo_config

    attention = args.attention or ("cudnn" if platform == "gpu" else "auto")
    return zoo_config.load(None, [
        "model.name=gpt", f"model.size={args.size}", f"model.vocab_size={args.vocab}", "model.bias=false",
        f"model.attention={attention}", f"model.remat={args.remat}", "data.name=text", f"data.seq_len={args.seq_len}",
        "optimizer.name=adamw", "optimizer.learning_rate=6e-4", "optimizer.clip_norm=1.0",
        f"train.batch_size={args.batch}", f"train.eval_batch_size={args.batch}", "train.precision=bfloat16",
        f"train.steps={args.steps + 2}"])


def step_flops(compiled, exp, tokens: int) -> tuple[float, str]:
    """FLOPs of one step over all devices: XLA's count, else 6N + attention per token."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    if cost and cost.get("flops"):
        return cost["flops"] * exp.mesh.size, "XLA"
    from zoo.experiment import count_params

    layers, _, d = exp.cfg.model.dims()
    n = count_params(abstract_params(exp))
    return tokens * (6 * n + 12 * layers * d * exp.cfg.data.seq_len), "6N+attn"


def abstract_params(exp):
    import jax
    x = exp.dataset.train_batch(0, 0, exp.cfg.train.batch_size)["x"]
    return jax.eval_shape(exp.model.init, jax.random.PRNGKey(0), x)


def measure(args) -> dict:
    import jax

    from zoo import targets
    from zoo.commands.compile import experiment
    from zoo.experiment import init_state, train_batch
    from zoo.steps import make_train_step

    local = targets.local()
    exp = experiment(config(args, local.platform), local)
    state, shardings = init_state(exp)
    step = make_train_step(exp, shardings)
    batches = [train_batch(exp, i) for i in range(2)]
    start = time.perf_counter()
    compiled = step.lower(state, batches[0]).compile()
    compile_s = time.perf_counter() - start
    for i in range(2):
        state, metrics = compiled(state, batches[i])
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for i in range(args.steps):
        state, metrics = compiled(state, batches[i % 2])
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - start) / args.steps
    tokens = args.batch * args.seq_len
    flops, source = step_flops(compiled, exp, tokens)
    peak = next((v for k, v in PEAK_BF16.items() if local.devices[0].device_kind.startswith(k)), None)
    return {"device": f"{len(local.devices)}x {local.devices[0].device_kind}", "model": f"gpt {args.size}",
            "attention": exp.cfg.model.attention, "batch x T": f"{args.batch} x {args.seq_len}",
            "step ms": 1e3 * seconds, "tokens/s": tokens / seconds, "TFLOP/step": flops / 1e12,
            "FLOPs from": source, "TFLOP/s": flops / seconds / 1e12,
            "MFU %": "n/a" if peak is None else 100 * flops / seconds / (peak * len(local.devices)),
            "compile s": compile_s, "loss": float(metrics["loss"])}


def main(argv=None) -> int:
    from bench.common import table

    print(table([measure(arguments(argv))]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
