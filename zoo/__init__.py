"""zoo: a JAX architecture zoo written as pure functions, with one optax trainer.

    import zoo
    model = zoo.models.build("mlp", num_outputs=10)        # init/apply over a params pytree
    run = zoo.load_run("runs/mnist1d_cnn")                 # a trained run: config, model, params
    zoo.evaluate(run), zoo.predict(run, x)                 # its test metrics; its predictions

Everything is imported on first use (`zoo.models` included, which imports jax), so the `zoo`
command's text answers (`zoo --help`, `zoo list models`) never wait for jax.
"""
import importlib

_LAZY = {"load_run": "zoo.experiment", "evaluate": "zoo.inference", "predict": "zoo.inference"}


def __getattr__(name: str):
    if name == "models":
        return importlib.import_module("zoo.models")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


__all__ = ["evaluate", "load_run", "models", "predict"]
