"""Greedy decoding speed of the translation models: the encoder-decoder Transformer with its
key/value cache and with full recomputation of the prefix at every step (cache=False), and the
attentional GRU, each the model's own jitted lax.while_loop (zoo.models.decoding.greedy).

    python -m bench.bench_decode                                   # freshly initialised models
    python -m bench.bench_decode --train-steps 300 --repeats 5     # briefly trained first

Each row decodes the first evaluation batch of its shipped config (train.eval_batch_size
sources, 500 for numbers_en_de_*; --batch to change it) once to compile, then --repeats more
times; the time is the best of those. tokens/s counts decoded positions: batch x the steps the
loop ran, which is the longest row's output up to its EOS (or max_decode_length when a row never
ends). The cached and recomputing decodes of one Transformer give the same ids (checked here),
so they run the same steps and are compared at equal tokens generated. A freshly initialised
model (the default) seldom emits EOS and decodes the whole max_decode_length; --train-steps N
trains N steps of the config's own train_step first (from its seed), whose decodes stop at the
longest translation.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from bench import common

DEFAULT = ("numbers_en_de_transformer", "numbers_en_de_gru")
EOS = 2   # zoo.data.translation.EOS


def trained_params(name: str, overrides: list[str], steps: int):
    """(experiment, params) of config `name`: fresh, or after `steps` of its train_step."""
    exp, state, step, batch = common.train_steps(name, overrides)
    for i in range(steps):
        state, _ = step(state, batch(i))
    return exp, state["params"]


def decode_steps(ids: np.ndarray) -> int:
    """The steps greedy decoding ran for output ids [B, L]: the longest row up to its EOS."""
    ended = ids == EOS
    lengths = np.where(ended.any(1), ended.argmax(1) + 1, ids.shape[1])
    return int(lengths.max())


def time_decode(decode, repeats: int) -> tuple[np.ndarray, float, float]:
    """(ids, compile-and-first-call seconds, best of `repeats` seconds) of `decode()`."""
    start = time.perf_counter()
    ids = np.asarray(common.block(decode()))
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        common.block(decode())
        best = min(best, time.perf_counter() - start)
    return ids, first, best


def variants(name: str, exp, params, source) -> dict:
    """decoder label -> a call decoding `source` greedily (both cache settings for seq2seq)."""
    from zoo.models import entry
    model, cfg = exp.cfg.model_name, exp.cfg.model
    translate = entry(model).translate
    if model != "seq2seq":
        return {model: lambda: translate(model, cfg, params, source, beam_size=1)}
    return {f"{model} cache={cache}": (lambda cache=cache: translate(model, cfg, params, source, beam_size=1,
                                                                     cache=cache))
            for cache in (True, False)}


def bench(name: str, overrides: list[str], args) -> list[dict]:
    exp, params = trained_params(name, overrides, args.train_steps)
    rows = args.batch or exp.cfg.train.eval_batch_size
    source = next(iter(exp.dataset.eval_batches(rows)))["x"]["source"]
    out, reference = [], None
    for label, decode in variants(name, exp, params, source).items():
        ids, first, best = time_decode(decode, args.repeats)
        if reference is not None:     # cache or not, one model decodes the same ids
            np.testing.assert_array_equal(ids, reference, err_msg=f"{label} differs from the cached decode")
        reference = ids
        steps = decode_steps(ids)
        out.append({"config": name, "decoder": label, "batch": len(source), "steps": steps,
                    "max_length": ids.shape[1], "compile+first_s": first, "best_s": best,
                    "tokens/s": round(len(source) * steps / best)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", default=list(DEFAULT), help="shipped translation configs")
    p.add_argument("--batch", type=int, default=None, help="sources per decode (default: train.eval_batch_size)")
    p.add_argument("--repeats", type=int, default=3, help="timed decodes after the compiling one; the best counts")
    p.add_argument("--train-steps", type=int, default=0, help="train this many steps first (default: fresh init)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every config")
    args = p.parse_args(argv)
    report = common.Report()
    state = f"after {args.train_steps} training steps" if args.train_steps else "freshly initialised"
    report(f"greedy decoding, {state}, best of {args.repeats} after compiling")
    rows = [row for name in args.configs for row in bench(name, args.set, args)]
    report(common.table(rows))
    by_label = {row["decoder"]: row for row in rows}
    if {"seq2seq cache=True", "seq2seq cache=False"} <= set(by_label):
        cached, recomputed = by_label["seq2seq cache=True"], by_label["seq2seq cache=False"]
        report(f"the key/value cache decodes {recomputed['best_s'] / cached['best_s']:.1f}x faster than recomputation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
