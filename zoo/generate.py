"""Sample text from a trained language-model run.

    python generate.py runs/shakespeare_char --prompt "ROMEO:" --length 300 --temperature 0.8 --top-k 20

Reads the run's config.yaml and latest checkpoint, encodes the prompt with the dataset's
vocabulary and calls the model family's `generate(cfg, params, prompt, *, steps, key,
temperature, top_k)` (the recurrent LMs carry their state; the GPT uses its KV cache).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def sampler(model_name: str):
    """The `generate` function of a model's family module, or None."""
    from zoo.models import REGISTRY
    return REGISTRY[model_name].sample


def load_run(run_dir: Path):
    """(experiment, params) of a finished or checkpointed run."""
    from zoo import checkpoint, config, train
    cfg = config.load(run_dir / "config.yaml", [f"run.dir={run_dir.parent}", f"run.name={run_dir.name}"])
    exp = train.setup(cfg)
    if not any(p.name.isdigit() for p in (run_dir / "checkpoints").glob("*")):
        raise config.ConfigError(f"{run_dir} has no checkpoint yet; train it first")
    state, shardings = train.init_state(exp)
    ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", cfg.train.keep_checkpoints)
    restored, _ = ckpt.restore(checkpoint.abstract(state, shardings))
    ckpt.close()
    return exp, restored["params"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="generate.py", description="Sample from a trained language model run.")
    p.add_argument("run_dir", help="a run directory, e.g. runs/shakespeare_char")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--length", type=int, default=300, help="characters to sample")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from zoo.config import ConfigError
    try:
        if args.length <= 0 or args.temperature <= 0:
            raise ConfigError("--length and --temperature must be positive")
        exp, params = load_run(Path(args.run_dir))
        generate = sampler(exp.cfg.model_name)
        if generate is None or not hasattr(exp.dataset, "encode"):
            raise ConfigError(f"model {exp.cfg.model_name!r} on {exp.cfg.data_name!r} is not a language model; "
                              f"generate needs a *_lm or gpt model trained on text")
        try:
            prompt = exp.dataset.encode(args.prompt)
        except ValueError as e:
            raise ConfigError(f"--prompt: {e}") from None
    except ConfigError as e:
        return _fail(str(e))
    import jax
    import jax.numpy as jnp
    tokens = generate(exp.cfg.model_name, exp.cfg.model, params, jnp.asarray(prompt)[None], steps=args.length,
                      key=jax.random.PRNGKey(args.seed), temperature=args.temperature, top_k=args.top_k)
    print(exp.dataset.decode(tokens[0]))
    return 0
