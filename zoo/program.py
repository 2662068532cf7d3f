"""What a run trains, set up once: the program of a single run, which zoo.replicas extends to
R replicas stacked on a leading axis. The trainer (zoo.train) drives either through one loop.

    program = Program.build(cfg)      # experiment, abstract state and batch: traced once
    state = program.init_state()      # the fresh state on the mesh
    step = program.train_step()       # jitted (state, batch, *program.step_args(active)) -> (state, metrics)
    program.evaluate(eval_step, params)   # [metrics of each replica]: one for a single run

A single run is the one-replica case: its metrics are lists of one, its state unstacked, and
its checkpoints, metrics and program are what they always were.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from zoo import experiment as ex
from zoo import mesh as meshlib
from zoo import steps, throughput
from zoo.errors import ConfigError
from zoo.experiment import Experiment, Run
from zoo.schema import Config
from zoo.selection import Selection, Selections


@dataclasses.dataclass(frozen=True)
class Program:
    """A single run: its experiment, the abstract state (shapes with shardings) and the
    abstract global training batch, each computed once per run."""
    exp: Experiment
    shapes: Any
    shardings: Any
    batch: Any
    compiled: dict = dataclasses.field(default_factory=dict, compare=False)  # programs compiled once: init
    placed: dict = dataclasses.field(default_factory=dict, compare=False)    # a batch that never changes, on the mesh

    stacked = False

    @classmethod
    def build(cls, cfg: Config, devices: list | None = None) -> Program:
        """The program of `cfg` on `devices` (default: every device of every process)."""
        exp = ex.build(cfg, devices=devices)
        batch = ex.batch_spec(exp)
        shapes, shardings = ex.abstract_state(exp, batch, check_inputs=True)
        return cls(exp, shapes, shardings, batch)

    @property
    def count(self) -> int:
        """How many replicas the program trains."""
        return 1

    # ------------------------------------------------------------------------- state
    def init_program(self) -> tuple[Callable, tuple]:
        """(the state's initialiser, its arguments): make(init_key, x), x batch 0's inputs (an
        argument, not a constant: the program does not hold data, and a compilation cache finds
        it again for any data of these shapes)."""
        x = jax.tree.map(jnp.asarray, ex.host_batch(self.exp, 0)["x"])
        return ex.state_fn(self.exp), (ex.init_key(self.exp), x)

    def compile_init(self) -> None:
        """Compile the initialiser, once per Program (the trainer does it in a thread while the
        step compiles: XLA compiles the two side by side)."""
        if "init" not in self.compiled:
            make, args = self.init_program()
            self.compiled["init"] = jax.jit(make, out_shardings=self.shardings).lower(*args).compile(), args

    def init_state(self) -> dict:
        self.compile_init()
        compiled, args = self.compiled["init"]
        return compiled(*args)

    def warm_start(self, state: dict) -> dict:
        """`state` with train.init_from's params copied in and the optimizer state made anew."""
        params = ex.warm_params(self.exp, state["params"], self.shardings["params"])
        opt_state = jax.jit(self.exp.tx.init, out_shardings=self.shardings["opt_state"])(params)
        return {**state, "params": params, "opt_state": opt_state}

    def selection(self, params) -> Selections | None:
        """The model selection of train.select, starting from `params` (None: train.select=last)."""
        select = self.exp.cfg.train.select
        return None if select == "last" else Selections(select, params, self.count, self.stacked)

    def checkpoint_target(self) -> Any:
        """The abstract tree a checkpoint holds: the state, and the selection when selecting."""
        if self.exp.cfg.train.select == "last":
            return self.shapes
        return {**self.shapes, "best": Selection.abstract(self.shapes["params"], self.exp.mesh)}

    # ------------------------------------------------------------------------- steps
    def train_step(self) -> Callable:
        """The jitted `(state, batch, *step_args) -> (state, metrics)`, state donated."""
        return steps.make_train_step(self.exp, self.shardings)

    def step_args(self, active: np.ndarray) -> tuple:
        """The step's arguments after the batch (a stacked run's swept values and active mask)."""
        return ()

    def host_batch(self, step: int) -> dict:
        """This process's rows of training batch `step`, as NumPy arrays."""
        return ex.host_batch(self.exp, step)

    def place(self, host: dict, sharding) -> dict:
        """Host batches (this process's rows) as global arrays laid out as `sharding`."""
        return meshlib.global_batch(host, sharding)

    def train_batch(self, step: int) -> dict:
        """Training batch `step` on the mesh (sent once where it is the same at every step)."""
        if self.same_every_step():
            return self.placed_once(1, lambda: self.place(self.host_batch(step), self.batch_sharding()))
        return self.place(self.host_batch(step), self.batch_sharding())

    def train_batches(self, start: int, count: int) -> dict:
        """Training batches start..start+count-1 stacked on a new leading axis, on the mesh in one
        transfer (train.steps_per_execution)."""
        def stacked():
            hosts = [self.host_batch(step) for step in range(start, start + count)]
            return self.place(jax.tree.map(lambda *a: np.stack(a), *hosts), meshlib.chunked(self.batch_sharding()))
        return self.placed_once(count, stacked) if self.same_every_step() else stacked()

    def same_every_step(self) -> bool:
        """Whether every training batch is the same (a whole graph: Dataset.same_every_step)."""
        return self.exp.dataset.same_every_step

    def placed_once(self, count: int, place: Callable[[], dict]) -> dict:
        """The batch (of `count` steps) placed on the first call and reused: a whole graph's
        arrays were sent to the devices again at every step, 40% of karate_gcn's loop."""
        if count not in self.placed:
            self.placed[count] = place()
        return self.placed[count]

    def batch_sharding(self):
        """The layout of every leaf of a training batch."""
        return jax.tree.leaves(self.batch)[0].sharding

    def eval_step(self) -> Callable:
        return steps.make_eval_step(self.exp)

    def step_flops(self, compiled) -> float:
        """FLOPs per device of one train step, from XLA's cost analysis of the compiled windowed
        step. A steps_per_execution program's scan body is counted once, so it is one step's too
        (tests/integration/test_steps_per_execution.py checks that K = 1 and K = 5 agree)."""
        return throughput.program_costs(compiled)["flops"]

    def evaluate(self, eval_step: Callable, params, split: str = "eval") -> list[dict[str, float]]:
        """Each replica's metrics over the evaluation ("eval") or validation ("val") split."""
        return [steps.evaluate(self.exp, eval_step, params, split)]

    def learning_rate(self, step: int) -> float:
        return float(self.exp.lr(step))

    # ------------------------------------------------------------------------- reports
    def combine(self, rows: list[dict], active: np.ndarray) -> dict:
        """One record of the replicas' metrics rows (a single run's row as it is)."""
        return rows[0]

    def summarize(self, rows: list[dict]) -> dict:
        """summary.json's metrics from each replica's final row (a single run's row as it is)."""
        return rows[0]

    def first_run(self, run_dir: Path, params, step: int) -> Run:
        """The trained Run that hooks (figures) draw: the first replica's."""
        return Run(run_dir, self.exp, params, step)

    def param_count(self, params) -> int:
        return ex.count_params(params)

    def tokens_per_step(self) -> int:
        """Target tokens one step trains on, over every replica (what tokens_per_s counts)."""
        return int(np.prod(self.batch["y"].shape))


def check_memory(program: Program, compiled) -> None:
    """ConfigError, in one line, when the compiled train step (arguments, outputs and
    temporaries, plus the selected params) needs more memory than the devices have free."""
    m = compiled.memory_analysis()
    if m is None:
        return
    devices = list(program.exp.mesh.devices.flat)
    need = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    if program.exp.cfg.train.select != "last":
        need += sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(program.shapes["params"])) // len(devices)
    stats = devices[0].memory_stats() if devices[0].platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        free, where = stats["bytes_limit"] - stats.get("bytes_in_use", 0), f"{devices[0].device_kind} memory"
    else:  # simulated CPU devices share the host's memory
        need *= len(devices)
        free, where = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free host memory"
    if need <= free:
        return
    if program.count == 1:
        raise ConfigError(f"the train step needs about {need / 2**30:.2f} GiB per device but {where} has "
                          f"{free / 2**30:.2f} GiB; lower train.batch_size, or spread the batch over more devices")
    raise ConfigError(f"{program.count} replicas need about {need / 2**30:.2f} GiB per device for the step "
                      f"({need / program.count / 2**30:.3f} GiB each) but {where} has {free / 2**30:.2f} GiB; "
                      f"train fewer at once (train.seeds), or spread them with mesh.seeds")


def windowed_step(program: Program, chunk: int = 1) -> tuple[Callable, Callable, Callable]:
    """The train step that also adds its metrics to float32 sums carried through the loop and
    counts skipped steps on the device: `(state, sums, guard, batch, *step_args) -> (state, sums,
    guard)`, compiled ahead of time for the abstract state and batch, state and sums donated.
    `guard` holds int32 counters per replica: "bad_steps" (steps skipped as non-finite),
    "in_a_row" (the current run of them) and "worst" (the longest run), read by the loop only
    every few steps. chunk=K > 1 (train.steps_per_execution): K steps in one call, a `lax.scan`
    over batches stacked [K, ...] (Program.train_batches), as Keras' steps_per_execution: one
    dispatch and one transfer for K steps. Returns (compiled step, zero_sums(), zero_guard())."""
    train_step = program.train_step()

    def windowed(state, sums, guard, batch, *args):
        state, metrics = train_step(state, batch, *args)
        sums = jax.tree.map(lambda total, m: total + m.astype(jnp.float32), sums, metrics)
        bad = metrics["bad_step"]
        in_a_row = jnp.where(bad > 0, guard["in_a_row"] + 1, 0)
        guard = {"bad_steps": guard["bad_steps"] + bad, "in_a_row": in_a_row,
                 "worst": jnp.maximum(guard["worst"], in_a_row)}
        return state, sums, guard

    def steps_in_one_call(state, sums, guard, batches, *args):
        carry, _ = jax.lax.scan(lambda carry, batch: (windowed(*carry, batch, *args), None), (state, sums, guard), batches)
        return carry

    args = program.step_args(np.ones(program.count, bool))
    metrics = jax.eval_shape(train_step, program.shapes, program.batch, *args)[1]
    replicated = meshlib.replicated(program.exp.mesh)
    zero_sums = jax.jit(lambda: jax.tree.map(lambda m: jnp.zeros(m.shape, jnp.float32), metrics),
                        out_shardings=replicated)
    bad = metrics["bad_step"]
    zero_guard = jax.jit(lambda: {k: jnp.zeros(bad.shape, jnp.int32) for k in ("bad_steps", "in_a_row", "worst")},
                         out_shardings=replicated)
    batch = program.batch if chunk == 1 else jax.tree.map(
        lambda a: jax.ShapeDtypeStruct((chunk, *a.shape), a.dtype, sharding=meshlib.chunked(a.sharding)), program.batch)
    # the guard is not donated: the loop keeps earlier steps' counters to read them later
    step = jax.jit(windowed if chunk == 1 else steps_in_one_call, donate_argnums=(0, 1),
                   out_shardings=(program.shardings, replicated, replicated),
                   in_shardings=(program.shardings, replicated, replicated, jax.tree.map(lambda a: a.sharding, batch),
                                 *[None] * len(args)))
    compiled = step.lower(program.shapes, jax.eval_shape(zero_sums), jax.eval_shape(zero_guard), batch,
                          *args).compile()
    return compiled, zero_sums, zero_guard
