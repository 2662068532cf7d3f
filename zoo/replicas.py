"""Many models at once: the replicas of train.seeds / train.sweep trained as one vmapped program.

    train: {seeds: 10}                                          # 10 seeds of one config
    train: {sweep: {optimizer.learning_rate: [1.0e-3, 1.0e-2]}}  # one replica per value (x seeds)

The train state of R replicas is one pytree whose every leaf has a leading axis R (params,
optimizer state, RNG key, step), split over the "seeds" mesh axis (mesh.seeds). The single
run's step (zoo.steps.make_train_step) is vmapped over it, and replica r is fed the batch a run
with its own seed would see, so replica r computes what that separate run computes: its init,
data order and dropout masks are the same bits. What may differ is float rounding: XLA may
order the sums of a batched matmul differently from the unbatched one.

Swept keys of schema.TRACED_SWEEP_KEYS (learning rate, its end value, weight decay, dropout
rate) are traced numbers, one per replica: the optimizer, or the model, is rebuilt inside the
vmapped step from them (a dropout rate as the exact keep probability of layers.SweptRate). Any
other swept key changes the program (a width, a depth, a kernel size: a shape or a Python
constant in the model's closure), so each of its values trains as a stacked program of its own,
in a sub-directory of the run. RUN/sweep.md has a row per point of any sweep (mean and std over
its seeds).

Selection (train.select) is per replica; with train.patience a replica that stops keeps its
selected params and its state is frozen (its updates are masked) while the others train on.
Checkpoints hold the stacked tree; summary.json holds every replica's metrics ("replicas") and
their mean (the usual keys) and standard deviation (KEY_std).
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from zoo import ensemble, steps
from zoo import experiment as ex
from zoo import mesh as meshlib
from zoo.experiment import Experiment, Run
from zoo.program import Program
from zoo.schema import TRACED_SWEEP_KEYS, Config
from zoo.selection import Selection


@dataclasses.dataclass(frozen=True)
class Stacked(Program):
    """R replicas as one program: the Program of a single run with a leading replica axis on
    the state (and on the batch, unless every replica reads the same one), each replica's
    experiment and the swept traced values [R]."""
    replicas: tuple[Experiment, ...] = ()
    hyper: dict = dataclasses.field(default_factory=dict)
    one: Any = None          # one replica's abstract state, unstacked
    shared: bool = False     # one batch for every replica (one seed, or data that ignores it)

    stacked = True

    @classmethod
    def build(cls, cfg: Config, devices: list | None = None) -> Stacked:
        exp = ex.build(cfg, devices=devices)
        replicas = tuple(ex.replica_experiments(exp))
        hyper = {key: ex.traced_values(key, [ex.swept_value(r.cfg, key) for r in replicas])
                 for key in cfg.train.sweep if key in TRACED_SWEEP_KEYS}
        one_batch = ex.batch_spec(exp)
        one, _ = ex.abstract_state(replicas[0], one_batch, check_inputs=True)
        shapes = ex.stack_abstract(one, len(replicas))
        shared = host_batches(replicas, 0)[0]
        batch = one_batch if shared else ex.stack_abstract(one_batch, len(replicas))
        return cls(exp, shapes, jax.tree.map(lambda a: a.sharding, shapes), batch, replicas=replicas, hyper=hyper, one=one,
                   shared=shared)

    @property
    def count(self) -> int:
        return len(self.replicas)

    def replica_exp(self, hyper: dict) -> Experiment:
        """The experiment a replica's step runs: the first replica's, with `hyper` (traced) swept."""
        return ex.with_hyperparameters(self.exp, hyper) if hyper else self.replicas[0]

    # ------------------------------------------------------------------------- state
    def init_program(self) -> tuple[Callable, tuple]:
        """The R fresh states, each the one a run with that replica's seed starts from, in one
        call: a loop over the replicas (lax.map), which XLA compiles in less than half the time of
        the vmapped initialisers (0.6 s against 1.4 s for 10 GCNs) and runs once."""
        x = jax.tree.map(jnp.asarray, ex.host_batch(self.exp, 0)["x"])
        seeds = jnp.asarray([r.cfg.train.seed for r in self.replicas], jnp.int32)

        def make(seeds, hyper, x):
            return jax.lax.map(lambda a: ex.fresh_state(self.replica_exp(a[1]), a[0], x), (seeds, hyper))
        return make, (seeds, self.hyper, x)

    def warm_start(self, state: dict) -> dict:
        params = ex.warm_params(self.exp, state["params"], self.shardings["params"], self.count)
        init = functools.partial(jax.lax.map, lambda a: self.replica_exp(a[1]).tx.init(a[0]))
        opt_state = jax.jit(lambda *a: init(a), out_shardings=self.shardings["opt_state"])(params, self.hyper)
        return {**state, "params": params, "opt_state": opt_state}

    def checkpoint_target(self) -> Any:
        if self.exp.cfg.train.select == "last":
            return self.shapes
        best = Selection.abstract(self.one["params"], self.exp.mesh)
        return {**self.shapes, "best": ex.stack_abstract(best, self.count)}

    # ------------------------------------------------------------------------- steps
    def train_step(self) -> Callable:
        """The jitted `step(state, batch, hyper, active) -> (state, metrics [R])`: the single
        run's step vmapped over the replicas; with train.patience, replicas with active=False
        keep their state (stopped early)."""
        one_shardings = jax.tree.map(lambda a: a.sharding, self.one)
        fixed = steps.make_train_step(self.replica_exp({}), one_shardings)
        masked = bool(self.exp.cfg.train.patience)

        def step(state, batch, hyper, active):
            single = steps.make_train_step(self.replica_exp(hyper), one_shardings) if hyper else fixed
            new, metrics = single(state, batch)
            if masked:
                new = jax.tree.map(lambda n, o: jnp.where(active, n, o), new, state)
            return new, metrics

        vmapped = jax.vmap(step, in_axes=(0, None if self.shared else 0, 0, 0), spmd_axis_name=meshlib.REPLICA_AXIS)
        return jax.jit(vmapped, donate_argnums=0,
                       in_shardings=(self.shardings, jax.tree.map(lambda a: a.sharding, self.batch), None, None),
                       out_shardings=(self.shardings, meshlib.replicated(self.exp.mesh)))

    def step_args(self, active: np.ndarray) -> tuple:
        return self.hyper, active

    def host_batch(self, step: int) -> dict:
        """The replicas' batch of `step` ([R, B, ...], or [B, ...] when shared). Over several
        processes every process reads the whole batch and its devices take their blocks: the
        "seeds" axis may split the replicas over processes as the data axes split the rows."""
        return host_batches(self.replicas, step, jax.process_count() > 1, self.shared)[1]

    def place(self, host: dict, sharding) -> dict:
        return meshlib.place_whole(host, sharding)

    def same_every_step(self) -> bool:
        return all(r.dataset.same_every_step for r in self.replicas)

    def eval_step(self) -> Callable:
        """The jitted `eval_step(params [R], batch) -> (metric sums [R], stats [R])`."""
        vmapped = jax.vmap(steps.eval_step_fn(self.exp), in_axes=(0, None))
        return jax.jit(vmapped, out_shardings=meshlib.replicated(self.exp.mesh))

    def evaluate(self, eval_step: Callable, params, split: str = "eval") -> list[dict[str, float]]:
        return steps.evaluate(self.exp, eval_step, params, split, replicas=self.count)

    def learning_rate(self, step: int) -> float:
        return ensemble.mean_std([float(r.lr(step)) for r in self.replicas])[0]

    # ------------------------------------------------------------------------- reports
    def combine(self, rows: list[dict], active: np.ndarray) -> dict:
        """The replicas' mean metrics, how many still train, and each one's values."""
        means = {k: ensemble.mean_std([row[k] for row in rows])[0] for k in rows[0]}
        return {**means, "replicas_active": int(active.sum()),
                "per_replica": {k: [row[k] for row in rows] for k in rows[0]}}

    def summarize(self, rows: list[dict]) -> dict:
        """Every replica's row (its seed and swept values first), their mean and std (KEY_std)."""
        rows = [{"seed": r.cfg.train.seed, **{k: float(ex.swept_value(r.cfg, k)) for k in self.hyper}, **row}
                for r, row in zip(self.replicas, rows, strict=True)]
        return {**ensemble.mean_and_std(rows, skip=("seed",)), "replicas": rows,
                "seeds": sorted({r.cfg.train.seed for r in self.replicas})}

    def first_run(self, run_dir: Path, params, step: int) -> Run:
        """The first replica's Run (figures draw it; its curves are the replicas' means)."""
        return Run(run_dir, self.replicas[0], jax.tree.map(lambda a: a[0], params), step)

    def param_count(self, params) -> int:
        return ex.count_params(params) // self.count

    def tokens_per_step(self) -> int:
        return super().tokens_per_step() * (self.count if self.shared else 1)


def host_batches(replicas: tuple[Experiment, ...], step: int, whole: bool = False,
                 shared: bool | None = None) -> tuple[bool, dict]:
    """(shared, batch): the one batch every replica sees at `step` (all replicas share a seed,
    or the data ignores it: a whole graph), else each replica's batch stacked [R, B, ...]; this
    process's rows of it, or with `whole` all of them. shared=None finds out which."""
    by_seed = {}
    for r in replicas:
        t = r.cfg.train
        if t.seed not in by_seed:
            by_seed[t.seed] = (r.dataset.train_batch(t.seed, step, t.batch_size, (0, 1)) if whole
                               else ex.host_batch(r, step))
        if shared:
            break
    batches = list(by_seed.values())
    if shared is None:
        first = jax.tree.leaves(batches[0])
        shared = all(all(a is b for a, b in zip(first, jax.tree.leaves(other))) for other in batches[1:])
    if shared:
        return True, batches[0]
    return False, jax.tree.map(lambda *a: np.stack(a), *[by_seed[r.cfg.train.seed] for r in replicas])
