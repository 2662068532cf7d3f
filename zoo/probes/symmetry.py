"""Symmetry, measured: how far a model is from invariance or equivariance under a group.

Axis legend: B batch, T sequence (or spatial) length, N nodes, K outputs.

For a group element g acting on inputs by rho_in(g) and on outputs by rho_out(g),

    error(g) = ||f(rho_in(g) x) - rho_out(g) f(x)|| / ||f(x)||       (Frobenius over the batch)

with rho_out = identity for invariance. Architectures and their groups:
- CNN, circular shifts of the length axis: convolution commutes with shifts (LeCun et al.
  1998), exactly with circular padding and shifts by multiples of the total stride when a mean
  or max readout ends the net; zero padding breaks it at the boundary, a flatten readout
  everywhere.
- GNN, node permutations (within each graph of a batch): message passing with a symmetric
  aggregator is permutation equivariant at node level and invariant after a graph readout
  (Gilmer et al. 2017; Xu et al. 2019). Float sums in another order differ by rounding only.
- Transformer encoder, token permutations: self-attention is permutation equivariant and a
  mean (or CLS) pooling makes the classifier invariant (Lee et al. 2019, Set Transformer);
  learned or rotary positions break it on purpose.
- EGNN, the Euclidean group E(3) (rotations, reflections, translations), one random element
  per graph: positions map to Q x + t, velocities to Q v, and the predicted positions must
  follow (Satorras et al. 2021). A GNN reading coordinates as features has no such symmetry.
- Deep Sets, permutations of each set's elements: rho(sum_t phi(x_t)) is invariant by
  construction (Zaheer et al. 2017); a GRU reading the set as a sequence is not. Padding past a
  set's length stays in place.
- MLP: no symmetry at all, the contrast.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from zoo import models
from zoo.graphs import GraphsTuple


def relative_error(a: jax.Array, b: jax.Array) -> float:
    """||a - b|| / ||b|| over all entries (float64 on the host)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def equivariance_error(f: Callable, x: Any, act_in: Callable, act_out: Callable = lambda y: y) -> float:
    """error(g) above for one element g given by its actions; act_out identity: invariance."""
    return relative_error(f(act_in(x)), act_out(f(x)))


def shift(x: jax.Array, s: int) -> jax.Array:
    """Circular shift by s of axis 1 (length, or tokens) of x [B, T, ...]."""
    return jnp.roll(x, s, axis=1)


def permute_tokens(x: jax.Array, perm: np.ndarray) -> jax.Array:
    """x [B, T, ...] with token t taken from token perm[t]."""
    return x[:, perm]


def block_permutation(rng: np.random.Generator, n_node: np.ndarray, num_nodes: int) -> np.ndarray:
    """int [N]: a random permutation of each graph's contiguous block of nodes (rows past
    sum(n_node) stay put), so that every node stays in its graph."""
    perm = np.arange(num_nodes)
    start = 0
    for n in np.asarray(n_node):
        perm[start:start + n] = start + rng.permutation(n)
        start += n
    return perm


def permute_nodes(graph: GraphsTuple, perm: np.ndarray) -> GraphsTuple:
    """The same graphs with node i of the result being node perm[i] of `graph`; edges keep
    their order and point at the nodes' new indices."""
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(len(perm))
    rows = lambda a: None if a is None else a[perm]
    return graph._replace(nodes=graph.nodes[perm], senders=inverse[np.asarray(graph.senders)],
                          receivers=inverse[np.asarray(graph.receivers)], positions=rows(graph.positions),
                          velocities=rows(graph.velocities))


def set_permutation(rng: np.random.Generator, lengths: np.ndarray, width: int) -> np.ndarray:
    """int [B, T]: row b a random permutation of positions 0..lengths[b]-1, padding in place."""
    perm = np.tile(np.arange(width), (len(lengths), 1))
    for b, n in enumerate(np.asarray(lengths)):
        perm[b, :n] = rng.permutation(n)
    return perm


def permute_sets(x: Any, perm: np.ndarray) -> Any:
    """Sets x [B, T, ...] or {"x": [B, T, ...], "lengths"} with element t of row b taken from
    element perm[b, t]."""
    elements = x["x"] if isinstance(x, dict) else x
    index = perm.reshape(*perm.shape, *(1,) * (elements.ndim - 2))
    moved = np.take_along_axis(np.asarray(elements), index, axis=1)
    return {**x, "x": moved} if isinstance(x, dict) else moved


def random_isometry(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q [dim, dim] orthogonal, a reflection half of the time; t [dim]): x -> Q x + t."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))                        # Haar-distributed (Mezzadri 2007)
    if (np.linalg.det(q) > 0) == (rng.random() < 0.5):
        q[:, 0] = -q[:, 0]
    return q.astype(np.float32), rng.standard_normal(dim).astype(np.float32)


def isometry_actions(q: np.ndarray, t: np.ndarray) -> tuple[Callable, Callable]:
    """(on inputs, on outputs) of the per-node isometries q [N, dim, dim], t [N, dim]."""
    def rotate(a):
        return None if a is None else jnp.einsum("nij,nj->ni", q, a)

    def act_in(graph: GraphsTuple) -> GraphsTuple:
        return graph._replace(positions=rotate(graph.positions) + t, velocities=rotate(graph.velocities))
    return act_in, lambda y: rotate(y) + t


def euclidean_errors(f: Callable, graph: GraphsTuple, num: int, seed: int = 0) -> np.ndarray:
    """Equivariance error of f (graph -> positions [N, dim]) under `num` draws of one random
    isometry (Q_g, t_g) per graph g: positions Q x + t, velocities Q v, outputs Q y + t -> [num]."""
    rng = np.random.default_rng(seed)
    graph_of = np.repeat(np.arange(graph.num_graphs), np.asarray(graph.n_node))
    out = []
    for _ in range(num):
        qs, ts = zip(*(random_isometry(rng, graph.positions.shape[-1]) for _ in range(graph.num_graphs)))
        out.append(equivariance_error(f, graph, *isometry_actions(np.stack(qs)[graph_of], np.stack(ts)[graph_of])))
    return np.array(out)


def shift_errors(f: Callable, x: jax.Array, shifts: range | list[int]) -> np.ndarray:
    """Invariance error of f under each circular shift s in `shifts` -> [len(shifts)]."""
    return np.array([equivariance_error(f, x, lambda v, s=s: shift(v, s)) for s in shifts])


def permutation_errors(f: Callable, x: jax.Array, num: int, seed: int = 0) -> np.ndarray:
    """Invariance error of f under `num` random token permutations -> [num]."""
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(x.shape[1]) for _ in range(num)]
    return np.array([equivariance_error(f, x, lambda v, p=p: permute_tokens(v, p)) for p in perms])


def set_permutation_errors(f: Callable, x: Any, num: int, seed: int = 0) -> np.ndarray:
    """Invariance error of f under `num` random permutations of each set's real elements -> [num]."""
    rng = np.random.default_rng(seed)
    elements = x["x"] if isinstance(x, dict) else x
    lengths = x["lengths"] if isinstance(x, dict) else np.full(elements.shape[0], elements.shape[1])
    perms = [set_permutation(rng, lengths, elements.shape[1]) for _ in range(num)]
    return np.array([equivariance_error(f, x, lambda v, p=p: permute_sets(v, p)) for p in perms])


def node_permutation_errors(f: Callable, graph: GraphsTuple, num: int, *, node_level: bool,
                            seed: int = 0) -> np.ndarray:
    """Equivariance (node_level: outputs [N, ...] permute with the nodes) or invariance
    (graph-level outputs) error of f under `num` random node permutations -> [num]."""
    rng = np.random.default_rng(seed)
    perms = [block_permutation(rng, graph.n_node, graph.nodes.shape[0]) for _ in range(num)]
    return np.array([equivariance_error(f, graph, lambda g, p=p: permute_nodes(g, p),
                                        (lambda y, p=p: y[p]) if node_level else (lambda y: y))
                     for p in perms])


def table(rows: dict[str, dict]) -> str:
    """A markdown table of symmetry results {run: numbers of `run`}."""
    def fmt(v):
        return "" if v is None else f"{v:.1e}"

    lines = ["| run | model | group | exact by construction for | max error there | max error elsewhere |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['model']} | {r['group']} | {r['exact_for'] or 'none'} | "
                     f"{fmt(r['max_error_exact'])} | {fmt(r['max_error_other'])} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- on a run
GROUPS = {"shift": "circular shifts of the length axis", "permutation": "token permutations",
          "nodes": "node permutations within each graph",
          "e3": "rotations, reflections and translations of each graph (E(3))",
          "set": "permutations of each set's elements"}



def exact_elements(name: str, cfg: Any, group: str, elements: list) -> tuple[str, np.ndarray]:
    """(description, mask [len(elements)]) of the elements the architecture makes an exact
    symmetry of its outputs ("", all False: none), as its registry entry says."""
    exact = models.entry(name).exact_symmetry
    return ("", np.zeros(len(elements), bool)) if exact is None else exact(cfg, group, elements)


def errors(f: Callable, x: Any, group: str, *, num: int, node_level: bool, seed: int) -> tuple[list, np.ndarray]:
    """(group elements, error of each) of f at x under `group`."""
    if group == "shift":
        shifts = list(range(1, x.shape[1]))
        return shifts, shift_errors(f, x, shifts)
    if group == "permutation":
        return list(range(num)), permutation_errors(f, x, num, seed)
    if group == "e3":
        return list(range(num)), euclidean_errors(f, x, num, seed)
    if group == "set":
        return list(range(num)), set_permutation_errors(f, x, num, seed)
    return list(range(num)), node_permutation_errors(f, x, num, node_level=node_level, seed=seed)


def run(run: Any, *, group: str | None = None, examples: int = 256, num: int = 8, seed: int = 0) -> dict:
    """Invariance (equivariance for node-level GNNs) error of the trained model under its
    group on `examples` evaluation inputs; writes run_dir/probes/symmetry.{json,png}."""
    from zoo.errors import ConfigError
    from zoo.probes import rundata

    exp, name = run.exp, run.exp.cfg.model_name
    group = group or models.entry(name).symmetry
    if group not in GROUPS:
        raise ConfigError(f"symmetry needs a group for model {name!r}: pass group={'|'.join(GROUPS)}")
    x = rundata.batches(exp, "eval", examples)[0]["x"]
    if group == "e3" and (not isinstance(x, GraphsTuple) or x.positions is None):
        raise ConfigError(f"group=e3 needs graphs with node positions; {exp.cfg.data_name} has none")
    x = x if isinstance(x, GraphsTuple) else jax.tree.map(lambda a: a[:examples], x)
    f = jax.jit(lambda v: exp.model.apply(run.params, v))
    node_level = models.entry(name).node_level or getattr(exp.cfg.model, "task_level", "graph") == "node"
    elements, errs = errors(f, x, group, num=num, node_level=node_level, seed=seed)
    exact_for, exact = exact_elements(name, exp.cfg.model, group, elements)
    numbers = {"model": name, "group": group, "elements": elements, "errors": errs, "exact_for": exact_for,
               "max_error_exact": float(errs[exact].max()) if exact.any() else None,
               "max_error_other": float(errs[~exact].max()) if (~exact).any() else None,
               "mean_error": float(errs.mean())}
    return rundata.write(run.run_dir, "symmetry", numbers, plot(numbers, f"{name} on {exp.cfg.data_name}"))


def plot(numbers: dict, title: str) -> Any:
    from zoo.probes import rundata

    fig, axes = rundata.figure(1, width=6)
    ax = axes[0]
    errs = np.maximum(numbers["errors"], 1e-12)   # exact zeros on a log axis
    ax.semilogy(numbers["elements"], errs, "o-")
    label = "shift s" if numbers["group"] == "shift" else "random element"
    ax.set(xlabel=label, ylabel="||f(g x) - g f(x)|| / ||f(x)||",
           title=f"{title}: {GROUPS[numbers['group']]}")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig
