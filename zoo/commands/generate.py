"""`zoo generate RUN --prompt TEXT` (and `python generate.py`): sample text from a trained
language-model run.

    zoo generate runs/shakespeare_char --prompt "ROMEO:" --length 300 --temperature 0.8 --top-k 20

Loads the run (zoo.experiment.load_run), encodes the prompt with the dataset's vocabulary and
calls the model's sampler (ModelEntry.sample: the recurrent LMs carry their state, the GPT uses
its KV cache). The speed goes to stderr: tokens sampled per second, compilation included, or,
with --timed N, the best of N samplings after a first one compiled (the best: on a busy
machine the others measure the other jobs).
"""
from __future__ import annotations

import argparse
import sys
import time

from zoo.errors import ConfigError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("generate", help="sample text from a trained language model",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a run directory, e.g. runs/shakespeare_char")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--length", type=int, default=300, help="characters to sample")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--timed", type=int, default=0, metavar="N",
                   help="compile first, then report the best of N timed samplings (tokens/s without compilation)")
    p.add_argument("--replica", type=int, default=None,
                   help="of a run of many replicas (train.seeds/sweep), this one (default: the first)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.length <= 0 or args.temperature < 0:
        raise ConfigError("--length must be positive and --temperature non-negative")
    import jax
    import jax.numpy as jnp

    from zoo.experiment import load_one
    from zoo.models import REGISTRY

    trained = load_one(args.run_dir, args.step, replica=args.replica)
    sample = REGISTRY[trained.cfg.model_name].sample
    dataset = trained.exp.dataset
    if sample is None or not hasattr(dataset, "encode"):
        raise ConfigError(f"model {trained.cfg.model_name!r} on {trained.cfg.data_name!r} is not a language model; "
                          f"generate needs a *_lm or gpt model trained on text")
    prompt = jnp.asarray(dataset.encode(args.prompt))[None]

    def sampled():
        return jax.block_until_ready(sample(trained.cfg.model_name, trained.cfg.model, trained.params, prompt,
                                            steps=args.length, key=jax.random.PRNGKey(args.seed),
                                            temperature=args.temperature, top_k=args.top_k))
    if args.timed:
        sampled()
    seconds = []
    for _ in range(max(args.timed, 1)):
        start = time.perf_counter()
        tokens = sampled()
        seconds.append(time.perf_counter() - start)
    print(dataset.decode(tokens[0]))
    how = f"best of {args.timed}, compiled before" if args.timed else "compilation included; --timed N excludes it"
    print(f"{args.length} tokens in {min(seconds):.3g} s: {args.length / min(seconds):,.0f} tokens/s ({how})",
          file=sys.stderr)
    return 0
