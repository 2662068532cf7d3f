"""E(n)-equivariant graph neural network (Satorras, Hoogeboom & Welling 2021, "E(n) Equivariant
Graph Neural Networks", ICML), and the paper's non-equivariant GNN baseline as an option.

Axis legend: N nodes, E edges, D node features, H hidden width, 3 space (any width works).
Over a padded `GraphsTuple` with `positions` x [N, 3] (and `velocities` v [N, 3]); edge k sends
from node j = s_k to node i = r_k; a_ij are the edge features (graph.edges, may be None).
Layer l (Equivariant Graph Convolutional Layer), eqs. 3-6 of the paper:

    m_ij      = phi_e(h_i, h_j, ||x_i - x_j||^2, a_ij)                       (3)
    x_i'      = x_i + C sum_{j != i} (x_i - x_j) phi_x(m_ij)                   (4)
    m_i       = sum_{j != i} m_ij                                            (5)
    h_i'      = h_i + phi_h(h_i, m_i)                                        (6, residual as the paper's code)

with C = 1 / (number of neighbours of i) (the mean). With velocities, eq. 7 replaces eq. 4:

    v_i'      = phi_v(h_i) v_i^init + C sum_{j != i} (x_i - x_j) phi_x(m_ij),    x_i' = x_i + v_i'

phi_e: Linear-SiLU-Linear-SiLU; phi_h: Linear-SiLU-Linear; phi_x: Linear-SiLU-Linear to 1 with
no bias, its last kernel initialised small (Glorot gain 0.001) as the authors' code does, so
coordinates start near rest; phi_v: Linear-SiLU-Linear to 1. h^0 = Linear(nodes). Initialisation: PyTorch's, as the code.
Only distances and differences of positions enter, and positions only enter linearly through
x_i - x_j, so rotations, reflections and translations of (x, v) carry through every layer, h
is invariant, and the model is equivariant to node permutations like every message-passing net.

Output: the final positions x^L [N, 3] (the N-body task predicts future positions). As in the
authors' N-body code, the edge features also carry ||x_i - x_j||^2 of the input positions.
Deviation: no clamp of the coordinate messages to +-100 (the authors' guard against blow-up).

`equivariant: false` is the paper's "GNN" baseline (its code's GNN with recurrent=True): the same
layers without coordinates, eqs. 3, 5, 6 with m_ij = phi_e(h_i, h_j, a_ij), on
h^0 = Linear([x_i, v_i]) (positions and velocities read as plain features, no ||v_i||, no
distances on the edges), every layer with phi_h, and the output decoder(h^L) = Linear-SiLU-Linear
to 3: the positions predicted directly. Nothing in it is E(3)-equivariant.

phi_e's first layer applies its kernel's h_i and h_j blocks to the N nodes before gathering them
to the edges (W [h_i; h_j] = W_i h_i + W_j h_j): the same product with n - 1 times fewer flops on
complete graphs of n nodes (a fifth of the N-body train step on XLA:CPU).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

import zoo.models.layers as L
from zoo.errors import ConfigError
from zoo.graphs import GraphsTuple
from zoo.models.core import Model, ModelEntry
from zoo.models.gnn import mlp
from zoo.models.segments import segment_mean, segment_sum


@dataclasses.dataclass(frozen=True)
class EGNNConfig:
    hidden_size: int = 64
    num_layers: int = 4
    activation: str = "silu"
    use_velocities: bool = True        # eq. 7 (needs graph.velocities); False: eq. 4
    coordinate_init_gain: float = 0.001
    equivariant: bool = True           # False: the paper's GNN baseline (module docstring)


def linear_init(key: jax.Array, d_in: int, d_out: int, *, bias: bool = True) -> dict:
    """A dense layer (zoo.models.layers.dense) with PyTorch's Linear init, as the authors' code:
    kernel and bias U(-1/sqrt(d_in), 1/sqrt(d_in)). LeCun normal (3x the variance) makes the
    coordinate updates of early training blow up now and then."""
    k_w, k_b = jax.random.split(key)
    params = {"kernel": L.fan_in_uniform(k_w, (d_in, d_out), d_in)}
    if bias:
        params["bias"] = L.fan_in_uniform(k_b, (d_out,), d_in)
    return params


def mlp_init(key: jax.Array, sizes: tuple[int, ...], *, last_bias: bool = True) -> list[dict]:
    """Dense layers sizes[0] -> sizes[1] -> ..., applied by zoo.models.gnn.mlp."""
    keys = jax.random.split(key, len(sizes) - 1)
    last = len(sizes) - 2
    return [linear_init(k, a, b, bias=last_bias or i < last) for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:]))]


def layer_init(key: jax.Array, hidden: int, edge_width: int, cfg: EGNNConfig, *, last: bool) -> dict:
    """The last layer of EGNN has no phi_h: its h' would reach no output. edge_width: the
    width of a_ij plus the radial term of eq. 3 (EGNN) or not (the GNN)."""
    k_e, k_h, k_x, k_v, k_last = jax.random.split(key, 5)
    params = {"edge": mlp_init(k_e, (2 * hidden + edge_width, hidden, hidden))}
    if not (last and cfg.equivariant):
        params["node"] = mlp_init(k_h, (2 * hidden, hidden, hidden))
    if not cfg.equivariant:
        return params
    coordinate = mlp_init(k_x, (hidden, hidden, 1), last_bias=False)
    coordinate[-1]["kernel"] = jax.nn.initializers.variance_scaling(
        cfg.coordinate_init_gain ** 2, "fan_avg", "uniform")(k_last, (hidden, 1), jnp.float32)
    params["coordinate"] = coordinate
    if cfg.use_velocities:
        params["velocity"] = mlp_init(k_v, (hidden, hidden, 1))
    return params


def edge_messages(params: list[dict], h: jax.Array, edge_attr: jax.Array, graph: GraphsTuple, act) -> jax.Array:
    """m_ij = phi_e(h_i, h_j, edge_attr_ij) [E, H] (eq. 3), phi_e's first kernel split as
    [W_i; W_j; W_a] so that W_i h_i and W_j h_j are computed once per node."""
    first, rest = params[0], params[1:]
    w_i, w_j, w_a = jnp.split(first["kernel"], [h.shape[-1], 2 * h.shape[-1]])
    y = (h @ w_i)[graph.receivers] + (h @ w_j)[graph.senders] + edge_attr @ w_a + first["bias"]
    return mlp(rest, act(y), act)


def egcl(params: dict, h: jax.Array, x: jax.Array | None, v: jax.Array | None, edge_attr: jax.Array,
         graph: GraphsTuple, act) -> tuple[jax.Array, jax.Array | None]:
    """One layer: (h [N, H], x [N, 3]) -> (h', x'); v: the initial velocities or None;
    x None: the GNN's layer (no coordinates)."""
    i, j, n = graph.receivers, graph.senders, h.shape[0]
    if x is not None:
        diff = x[i] - x[j]                                                         # x_i - x_j [E, 3]
        edge_attr = jnp.concatenate([jnp.sum(diff * diff, axis=-1, keepdims=True), edge_attr], -1)
    m_ij = edge_messages(params["edge"], h, edge_attr, graph, act)                # (3)
    if x is not None:
        shift = segment_mean(diff * mlp(params["coordinate"], m_ij, act, activate_output=False), i, n)  # C sum
        if v is None:
            x = x + shift                                                          # (4)
        else:
            x = x + mlp(params["velocity"], h, act, activate_output=False) * v + shift  # (7)
    if "node" not in params:
        return h, x
    m_i = segment_sum(m_ij, i, n)                                                     # (5)
    h = h + mlp(params["node"], jnp.concatenate([h, m_i], -1), act, activate_output=False)          # (6)
    return h, x


def edge_attributes(graph: GraphsTuple, *, equivariant: bool) -> jax.Array:
    """[E, D_edge (+ 1)]: the edge features, and for EGNN the squared input distance ||x_i - x_j||^2."""
    parts = [] if graph.edges is None else [graph.edges]
    if equivariant:
        diff = graph.positions[graph.receivers] - graph.positions[graph.senders]
        parts.append(jnp.sum(diff * diff, axis=-1, keepdims=True))
    if not parts:
        return jnp.zeros((graph.senders.shape[0], 0), graph.positions.dtype)
    return jnp.concatenate(parts, -1)


def build_egnn(name: str, cfg: EGNNConfig) -> Model:
    act = L.activation(cfg.activation)

    def check(graph):
        if not isinstance(graph, GraphsTuple) or graph.positions is None:
            raise ConfigError(f"{name} needs graphs with node positions (data.name=nbody)")
        if cfg.use_velocities and graph.velocities is None:
            raise ConfigError(f"{name} with use_velocities=true needs graphs with node velocities; "
                              f"set model.use_velocities=false")

    def input_features(graph):
        """h^0's input: the node features (EGNN) or [x, v] (the GNN)."""
        if cfg.equivariant:
            return graph.nodes
        return jnp.concatenate([graph.positions, *([graph.velocities] if cfg.use_velocities else [])], -1)

    def init(key, graph):
        check(graph)
        edge_width = edge_attributes(graph, equivariant=cfg.equivariant).shape[-1] + cfg.equivariant
        k_embed, *keys = jax.random.split(key, cfg.num_layers + 1)
        params = {"embed": linear_init(k_embed, input_features(graph).shape[-1], cfg.hidden_size),
                  "layers": [layer_init(k, cfg.hidden_size, edge_width, cfg, last=i == len(keys) - 1)
                             for i, k in enumerate(keys)]}
        if not cfg.equivariant:
            width = (cfg.hidden_size, cfg.hidden_size, graph.positions.shape[-1])
            params["decoder"] = mlp_init(jax.random.fold_in(key, 1), width)
        return params

    def apply(params, graph, *, key=None, train=False):
        check(graph)
        h = L.dense(params["embed"], input_features(graph))
        x = graph.positions if cfg.equivariant else None
        v = graph.velocities if cfg.equivariant and cfg.use_velocities else None
        edge_attr = edge_attributes(graph, equivariant=cfg.equivariant)
        for layer in params["layers"]:
            h, x = egcl(layer, h, x, v, edge_attr, graph, act)
        return x if cfg.equivariant else mlp(params["decoder"], h, act, activate_output=False)

    return Model.of(init, apply)


def exact_symmetry(cfg: EGNNConfig, group: str, elements: list):
    """EGNN: every node permutation and isometry; the GNN baseline: node permutations only."""
    import numpy as np

    exact = group == "nodes" or (group == "e3" and cfg.equivariant)
    return ("every element" if exact else ""), np.full(len(elements), exact)


MODELS = {
    "egnn": ModelEntry(EGNNConfig, build_egnn, symmetry="e3", exact_symmetry=exact_symmetry, node_level=True,
                       inputs=("graphs",)),
}
