"""What a config trains, before training it: its parameters, the cost of its steps, their memory.

    exp = experiment.build(cfg)
    table = parameters(exp)     # per parameter: path, shape, dtype, count, sharding on the mesh
    costs = step_costs(exp)     # FLOPs, bytes and memory of one train step and one forward pass

Everything is computed from abstract values (zoo.experiment.abstract_state, batch_spec) and
compiled programs: nothing is placed on a device, so the mesh may be one of accelerators this
host does not have (zoo.targets). FLOPs and memory are per device, as XLA reports them.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from zoo import experiment as ex
from zoo import throughput
from zoo.experiment import Experiment
from zoo.optim import path_name
from zoo.steps import make_train_step

# The analyses are of XLA's optimised HLO and its buffer assignment; LLVM's optimisation of the
# CPU code they never run changes neither (same FLOPs and bytes), and takes a third of compiling.
FAST_CPU_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def parameters(exp: Experiment) -> list[dict]:
    """One row per parameter: path ("blocks/0/dense/kernel"), shape, dtype, count and its
    sharding's PartitionSpec on the mesh (e.g. "PartitionSpec()" when replicated)."""
    shapes, shardings = ex.abstract_state(exp, check_inputs=True)
    leaves = jax.tree_util.tree_leaves_with_path(shapes["params"])
    return [{"path": path_name(path), "shape": list(leaf.shape), "dtype": str(leaf.dtype),
             "count": int(np.prod(leaf.shape)), "sharding": str(sharding.spec)}
            for (path, leaf), sharding in zip(leaves, jax.tree.leaves(shardings["params"]))]


def _forward(exp: Experiment):
    """The jitted forward pass `params, x -> outputs` in the configured precision."""
    dtype = ex.compute_dtype(exp)
    return jax.jit(lambda params, x: exp.model.apply(ex.cast(params, dtype), ex.cast(x, dtype)))


def step_costs(exp: Experiment) -> dict[str, Any]:
    """{"train_step": costs, "forward": costs} of the compiled programs for a training batch,
    costs as zoo.throughput.program_costs: flops, bytes_accessed, memory (bytes: arguments,
    outputs, temporaries, aliased), all per device. Compiles for the experiment's mesh."""
    shapes, shardings = ex.abstract_state(exp, check_inputs=True)
    batch = ex.batch_spec(exp)
    options = FAST_CPU_COMPILE if ex.platform(exp.mesh) == "cpu" else None
    train = make_train_step(exp, shardings).lower(shapes, batch).compile(options)
    forward = _forward(exp).lower(shapes["params"], batch["x"]).compile(options)
    return {"train_step": throughput.program_costs(train), "forward": throughput.program_costs(forward)}


def decoding_cache(exp: Experiment) -> dict[str, int]:
    """{"cache_positions", "cache_bytes"}: the decoding cache of one sequence as long as the
    training windows (model.context_length when set), for models that have one; else {}."""
    from zoo.models import REGISTRY

    cache_bytes = REGISTRY[exp.cfg.model_name].cache_bytes
    if cache_bytes is None:
        return {}
    length = getattr(exp.cfg.model, "context_length", None) or ex.batch_spec(exp)["x"].shape[1]
    return {"cache_positions": length, "cache_bytes": cache_bytes(exp.cfg.model, length)}


def summarize(exp: Experiment) -> dict[str, Any]:
    """Parameters, totals, step costs and what the step is worth per second at the devices'
    peak (a bound: `seconds_per_step_at_peak`), as one JSON-able dict."""
    table = parameters(exp)
    costs = step_costs(exp)
    devices = exp.mesh.devices.size
    flops = costs["train_step"]["flops"] * devices
    tokens = int(np.prod(ex.batch_spec(exp)["y"].shape)) if exp.dataset.task == "language_model" else None
    out = {"model": exp.cfg.model_name, "data": exp.cfg.data_name, "devices": devices,
           "mesh": dict(exp.mesh.shape), "parameters": table, "params": sum(r["count"] for r in table),
           "param_bytes": sum(r["count"] * np.dtype(r["dtype"]).itemsize for r in table),
           **costs, "train_flops_per_step": flops, "tokens_per_step": tokens, **decoding_cache(exp)}
    peak = throughput.peak_flops(exp.mesh.devices.flat[0], exp.cfg.train.precision)
    if peak and flops:
        out["peak_flops_per_s"] = peak * devices
        out["peak_source"] = throughput.peak_source(exp.mesh.devices.flat[0], exp.cfg.train.precision)
        out["seconds_per_step_at_peak"] = flops / (peak * devices)
    return out
