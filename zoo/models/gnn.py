"""Graph neural networks over a padded `GraphsTuple`: GCN, GAT, GIN and a graph network (MPNN).

Axis legend: N nodes, E edges, G graphs, D features, H attention heads, F features per head,
K outputs. Edge k carries a message from node s_k (sender) to node r_k (receiver); N(i) are
the senders of the edges into i. Layer input h [N, D], output h' [N, D'].

GCN (Kipf & Welling 2017), symmetric normalisation with self loops, d_i = 1 + in-degree:
    h'_i = sum_{j in N(i) + {i}} (d_i d_j)^(-1/2) h_j W + b         (= D^-1/2 (A + I) D^-1/2 H W)
GAT (Velickovic et al. 2018), per head, over N(i) + {i}:
    e_ij = LeakyReLU_0.2(a_src . W h_j + a_dst . W h_i)
    alpha_ij = softmax_j(e_ij)                 (edge softmax: segment max and sum over receivers)
    h'_i = concat_heads sum_j drop(alpha_ij) W h_j + b     (output layer: mean over heads)
GIN (Xu et al. 2019):
    h'_i = MLP((1 + eps) h_i + sum_{j in N(i)} h_j)           eps = 0 (GIN-0) or learned (GIN-eps)
Graph network block (Battaglia et al. 2018; "mpnn" here), u_g the globals of each graph:
    e'_k = phi_e([e_k, v_sk, v_rk, u_g(k)])
    v'_i = phi_v([rho_{e->v}(e'_k : r_k = i), v_i, u_g(i)])
    u'_g = phi_u([rho(e' in g), rho(v' in g), u_g])        missing e, u (None) are left out
    phi = LayerNorm(MLP(.)), MLP with a linear last layer (as the Graph Nets library); rho = sum/mean/max

Task level (config `task_level`): "node" gives [N, K]; "graph" reads out the final node
states per graph with sum, mean or max and applies a dense layer: [G, K]. Node-level GCN and
GAT end with a GCN/GAT layer of width K, as in the papers; GIN and MPNN end with a dense layer.
Dropout (rate = drop probability) hits every message-passing layer's input; GAT also drops
attention coefficients. Deviations: no BatchNorm in GIN's MLP (the model contract is
stateless); GIN's graph readout uses the last layer only, not the sum over layers.
Padding needs no masks here: padding edges only join padding nodes (see zoo.graphs).
Positions and velocities of a geometric graph (zoo.graphs) are appended to the node features.
Node features may be sparse (a jax.experimental.sparse.BCOO [N, D], e.g. bag-of-words):
GCN and GAT then multiply and drop out only the stored entries; GIN and MPNN densify.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax.experimental import sparse

import zoo.models.layers as L
from zoo.errors import ConfigError
from zoo.graphs import GraphsTuple
from zoo.models.core import Model, ModelEntry, every_element
from zoo.models.segments import SEGMENT_REDUCERS, edge_graph_index, node_graph_index, readout, segment_softmax, segment_sum


@dataclasses.dataclass(frozen=True)
class GCNConfig:
    num_outputs: int | None = None       # None: taken from the dataset
    hidden_sizes: tuple[int, ...] = (16,)
    activation: str = "relu"
    dropout_rate: float = 0.5
    task_level: Literal["node", "graph"] = "node"
    readout: Literal["sum", "mean", "max"] = "mean"


@dataclasses.dataclass(frozen=True)
class GATConfig(GCNConfig):
    hidden_sizes: tuple[int, ...] = (8,)  # features per head
    activation: str = "elu"
    dropout_rate: float = 0.6
    num_heads: int = 8
    output_heads: int = 1                 # heads of the node-level output layer (averaged)
    attention_dropout_rate: float = 0.6
    message_dropout_rate: float = 0.0     # on W h before aggregation (the reference code: 0.6)
    negative_slope: float = 0.2


@dataclasses.dataclass(frozen=True)
class GINConfig(GCNConfig):
    hidden_sizes: tuple[int, ...] = (64, 64, 64)
    dropout_rate: float = 0.0
    readout: Literal["sum", "mean", "max"] = "sum"
    learn_eps: bool = False
    mlp_depth: int = 2


@dataclasses.dataclass(frozen=True)
class MPNNConfig(GCNConfig):
    hidden_sizes: tuple[int, ...] = (64, 64, 64)
    dropout_rate: float = 0.0
    readout: Literal["sum", "mean", "max"] = "sum"
    aggregation: Literal["sum", "mean", "max"] = "sum"
    mlp_depth: int = 2
    layer_norm: bool = True               # LayerNorm after each update MLP (keeps sums bounded)


# ----------------------------------------------------------------------------- shared pieces
DROPOUT_CHUNK = 1 << 16  # threefry words per draw: XLA:CPU runs ~2x faster while they stay in cache


def keep_mask(key: jax.Array, threshold: int, shape: tuple[int, ...]) -> jax.Array:
    """bool mask, True with probability threshold / 2^16: 16-bit uniforms, two per 32-bit
    threefry word (half of jax.random.bernoulli's random-number cost), drawn in chunks."""
    size = math.prod(shape)
    chunk = min(DROPOUT_CHUNK, -(-size // 2))

    def draw(k):
        words = jax.random.bits(k, (chunk, 1), jnp.uint32)
        uniform16 = (words >> jnp.array([[0, 16]], jnp.uint32)) & jnp.uint32(0xFFFF)
        return (uniform16 < jnp.uint32(threshold)).reshape(-1)

    masks = jax.lax.map(draw, jax.random.split(key, -(-size // (2 * chunk))))
    return masks.reshape(-1)[:size].reshape(shape)


def dropout(key: jax.Array | None, x, rate: float | L.SweptRate, train: bool):
    """Inverted dropout (as layers.dropout) on x, dense or sparse (BCOO), with P(keep) =
    round((1 - rate) 2^16) / 2^16, within 8e-6 of 1 - rate (see keep_mask: the random numbers
    are most of a dense Cora epoch). Sparse x draws only its stored entries (the sparse dropout
    of Kipf & Welling's code): the same distribution, since dropping a zero changes nothing."""
    swept = isinstance(rate, L.SweptRate)  # one traced rate per replica of a stacked run
    if not train or (not swept and rate == 0.0):
        return x
    if key is None:
        raise ValueError("dropout with train=True needs a PRNG key: call apply(..., key=key)")
    if isinstance(x, sparse.BCOO):
        return sparse.BCOO((dropout(key, x.data, rate, train), x.indices), shape=x.shape,
                           indices_sorted=x.indices_sorted, unique_indices=x.unique_indices)
    if swept:
        threshold = rate.keep16
        scale = (2.0**16 / jnp.maximum(threshold, 1).astype(jnp.float32)).astype(x.dtype)
    else:
        threshold = round((1.0 - rate) * 2**16)
        scale = 2**16 / max(threshold, 1)
    keep = keep_mask(key, threshold, x.shape)
    return jnp.where(keep, x * scale, jnp.zeros_like(x))


def dense_features(x) -> jax.Array:
    return x.todense() if isinstance(x, sparse.BCOO) else x


def with_geometry(graph: GraphsTuple) -> GraphsTuple:
    """The graph with its positions and velocities, if any, appended to the node features:
    these models read coordinates as plain features (the non-equivariant baselines of EGNN)."""
    if not isinstance(graph, GraphsTuple):
        raise ConfigError("a graph network takes graphs, a GraphsTuple (data.name=karate, planetoid, graph_cycles, "
                          "graph_npz or nbody)")
    extra = [a for a in (graph.positions, graph.velocities) if a is not None]
    if not extra:
        return graph
    nodes = jnp.concatenate([dense_features(graph.nodes), *extra], axis=-1)
    return graph._replace(nodes=nodes, positions=None, velocities=None)


def glorot_dense_init(key: jax.Array, d_in: int, d_out: int) -> dict:
    """Dense layer with Glorot-uniform kernel [d_in, d_out] (the GCN and GAT papers' init)."""
    kernel = jax.nn.initializers.glorot_uniform()(key, (d_in, d_out), jnp.float32)
    return {"kernel": kernel, "bias": jnp.zeros((d_out,), jnp.float32)}


def mlp_init(key: jax.Array, d_in: int, width: int, depth: int) -> list[dict]:
    keys = jax.random.split(key, depth)
    return [L.dense_init(k, d_in if i == 0 else width, width) for i, k in enumerate(keys)]


def mlp(params: list[dict], x: jax.Array, act, *, activate_output: bool = True) -> jax.Array:
    for i, layer in enumerate(params):
        x = L.dense(layer, x)
        x = act(x) if activate_output or i < len(params) - 1 else x
    return x


def graph_head(params: dict, h: jax.Array, graph: GraphsTuple, cfg: GCNConfig) -> jax.Array:
    """Read out node states h [N, D] per graph and map to [G, K]."""
    index = node_graph_index(graph, h.shape[0])
    return L.dense(params, readout(h, index, graph.n_node.shape[0], cfg.readout))


def _check(cfg: GCNConfig, name: str) -> None:
    if cfg.num_outputs is None:
        raise ConfigError(f"{name} needs num_outputs (the trainer takes it from the dataset)")


# ----------------------------------------------------------------------------- GCN
def gcn_norm(graph: GraphsTuple, num_nodes: int) -> tuple[jax.Array, jax.Array]:
    """Entries of D^-1/2 (A + I) D^-1/2: per edge (d_s d_r)^-1/2 [E], per self loop 1/d_i [N]."""
    degree = 1.0 + segment_sum(jnp.ones(graph.receivers.shape, jnp.float32), graph.receivers, num_nodes)
    inv_sqrt = jax.lax.rsqrt(degree)
    return inv_sqrt[graph.senders] * inv_sqrt[graph.receivers], 1.0 / degree


def gcn_layer(params: dict, h: jax.Array, graph: GraphsTuple, norm: tuple[jax.Array, jax.Array]) -> jax.Array:
    """One GCN layer. h [N, D] -> [N, D']; multiplies by W first (D' < D on citation graphs)."""
    edge_weight, self_weight = (w.astype(h.dtype) for w in norm)
    hw = h @ params["kernel"].astype(h.dtype)
    messages = hw[graph.senders] * edge_weight[:, None]
    propagated = segment_sum(messages, graph.receivers, h.shape[0]) + hw * self_weight[:, None]
    return propagated + params["bias"].astype(h.dtype)[None, :]


def build_gcn(name: str, cfg: GCNConfig) -> Model:
    _check(cfg, name)
    act = L.activation(cfg.activation)
    node_level = cfg.task_level == "node"

    def init(key, graph):
        graph = with_geometry(graph)
        widths = (graph.nodes.shape[-1], *cfg.hidden_sizes) + ((cfg.num_outputs,) if node_level else ())
        keys = jax.random.split(key, len(widths))
        params = {"layers": [glorot_dense_init(k, a, b) for k, a, b in zip(keys, widths[:-1], widths[1:])]}
        if not node_level:
            params["head"] = L.dense_init(keys[-1], widths[-1], cfg.num_outputs)
        return params

    def apply(params, graph, *, key=None, train=False):
        graph = with_geometry(graph)
        h, norm = graph.nodes, gcn_norm(graph, graph.nodes.shape[0])
        keys = L.split_key(key, len(params["layers"]))
        for i, layer in enumerate(params["layers"]):
            h = gcn_layer(layer, dropout(keys[i], h, cfg.dropout_rate, train), graph, norm)
            if i < len(params["layers"]) - 1 or not node_level:
                h = act(h)
        return h if node_level else graph_head(params["head"], h, graph, cfg)

    return Model.of(init, apply)


# ----------------------------------------------------------------------------- GAT
def with_self_loops(graph: GraphsTuple, num_nodes: int) -> tuple[jax.Array, jax.Array]:
    """senders, receivers [E + N] with an edge i -> i appended for every node."""
    loops = jnp.arange(num_nodes, dtype=graph.senders.dtype)
    return jnp.concatenate([graph.senders, loops]), jnp.concatenate([graph.receivers, loops])


def gat_layer_init(key: jax.Array, d_in: int, heads: int, width: int, *, concat: bool = True) -> dict:
    k_w, k_src, k_dst = jax.random.split(key, 3)
    glorot = jax.nn.initializers.glorot_uniform()
    return {"kernel": glorot(k_w, (d_in, heads * width), jnp.float32),
            "attn_src": glorot(k_src, (heads, width), jnp.float32),
            "attn_dst": glorot(k_dst, (heads, width), jnp.float32),
            "bias": jnp.zeros((heads * width if concat else width,), jnp.float32)}


def gat_layer(params: dict, h: jax.Array, edges: tuple[jax.Array, jax.Array], *, concat: bool,
              cfg: GATConfig, key: jax.Array | None, train: bool) -> jax.Array:
    """One multi-head GAT layer. h [N, D] -> [N, H*F] (concat) or [N, F] (mean over heads)."""
    senders, receivers = edges
    heads, width = params["attn_src"].shape
    wh = (h @ params["kernel"].astype(h.dtype)).reshape(h.shape[0], heads, width)     # [N, H, F]
    score_src = jnp.einsum("nhf,hf->nh", wh, params["attn_src"].astype(h.dtype))
    score_dst = jnp.einsum("nhf,hf->nh", wh, params["attn_dst"].astype(h.dtype))
    logits = jax.nn.leaky_relu(score_src[senders] + score_dst[receivers], cfg.negative_slope)  # [E, H]
    alpha = segment_softmax(logits.astype(jnp.float32), receivers, h.shape[0]).astype(h.dtype)
    key_alpha, key_messages = L.split_key(key, 2)
    alpha = dropout(key_alpha, alpha, cfg.attention_dropout_rate, train)
    messages = dropout(key_messages, wh, cfg.message_dropout_rate, train)
    out = segment_sum(alpha[..., None] * messages[senders], receivers, h.shape[0])       # [N, H, F]
    bias = params["bias"].astype(h.dtype)[None, :]
    if concat:
        return out.reshape(h.shape[0], heads * width) + bias
    return out.mean(axis=1) + bias


def build_gat(name: str, cfg: GATConfig) -> Model:
    _check(cfg, name)
    act = L.activation(cfg.activation)
    node_level = cfg.task_level == "node"

    def init(key, graph):
        graph = with_geometry(graph)
        keys = jax.random.split(key, len(cfg.hidden_sizes) + 1)
        d_in, layers = graph.nodes.shape[-1], []
        for k, width in zip(keys, cfg.hidden_sizes):
            layers.append(gat_layer_init(k, d_in, cfg.num_heads, width))
            d_in = cfg.num_heads * width
        if node_level:
            layers.append(gat_layer_init(keys[-1], d_in, cfg.output_heads, cfg.num_outputs, concat=False))
            return {"layers": layers}
        return {"layers": layers, "head": L.dense_init(keys[-1], d_in, cfg.num_outputs)}

    def apply(params, graph, *, key=None, train=False):
        graph = with_geometry(graph)
        h, edges = graph.nodes, with_self_loops(graph, graph.nodes.shape[0])
        keys = L.split_key(key, 2 * len(params["layers"]))
        for i, layer in enumerate(params["layers"]):
            is_output = node_level and i == len(params["layers"]) - 1
            h = dropout(keys[2 * i], h, cfg.dropout_rate, train)
            h = gat_layer(layer, h, edges, concat=not is_output, cfg=cfg, key=keys[2 * i + 1], train=train)
            h = h if is_output else act(h)
        return h if node_level else graph_head(params["head"], h, graph, cfg)

    return Model.of(init, apply)


# ----------------------------------------------------------------------------- GIN
def build_gin(name: str, cfg: GINConfig) -> Model:
    _check(cfg, name)
    act = L.activation(cfg.activation)

    def init(key, graph):
        graph = with_geometry(graph)
        keys = jax.random.split(key, len(cfg.hidden_sizes) + 1)
        d_in, layers = graph.nodes.shape[-1], []
        for k, width in zip(keys, cfg.hidden_sizes):
            layer = {"mlp": mlp_init(k, d_in, width, cfg.mlp_depth)}
            if cfg.learn_eps:
                layer["eps"] = jnp.zeros((), jnp.float32)
            layers.append(layer)
            d_in = width
        return {"layers": layers, "head": L.dense_init(keys[-1], d_in, cfg.num_outputs)}

    def apply(params, graph, *, key=None, train=False):
        graph = with_geometry(graph)
        h = dense_features(graph.nodes)
        keys = L.split_key(key, len(params["layers"]))
        for i, layer in enumerate(params["layers"]):
            h = dropout(keys[i], h, cfg.dropout_rate, train)
            neighbours = segment_sum(h[graph.senders], graph.receivers, h.shape[0])
            self_weight = 1.0 + layer["eps"].astype(h.dtype) if "eps" in layer else 1.0
            h = mlp(layer["mlp"], self_weight * h + neighbours, act)
        if cfg.task_level == "node":
            return L.dense(params["head"], h)
        return graph_head(params["head"], h, graph, cfg)

    return Model.of(init, apply)


# ----------------------------------------------------------------------------- graph network
def _concat(parts: list[jax.Array | None]) -> jax.Array:
    return jnp.concatenate([p for p in parts if p is not None], axis=-1)


def _width(x: jax.Array | None) -> int:
    return 0 if x is None else x.shape[-1]


def update_init(key: jax.Array, d_in: int, width: int, cfg: MPNNConfig) -> dict:
    """phi: an MLP of `mlp_depth` layers, then LayerNorm if cfg.layer_norm."""
    params = {"mlp": mlp_init(key, d_in, width, cfg.mlp_depth)}
    if cfg.layer_norm:
        params["norm"] = L.layernorm_init(width)
    return params


def build_mpnn(name: str, cfg: MPNNConfig) -> Model:
    _check(cfg, name)
    act = L.activation(cfg.activation)
    aggregate, pool = SEGMENT_REDUCERS[cfg.aggregation], SEGMENT_REDUCERS[cfg.readout]

    def update(params, parts):
        y = mlp(params["mlp"], _concat(parts), act, activate_output=False)
        return L.layernorm(params["norm"], y) if "norm" in params else y

    def block(layer, graph):
        v, e, u = graph.nodes, graph.edges, graph.globals
        n, g = v.shape[0], graph.n_node.shape[0]
        node_graph, edge_graph = node_graph_index(graph, n), edge_graph_index(graph)
        u_edges = None if u is None else u[edge_graph]
        e = update(layer["edge"], [e, v[graph.senders], v[graph.receivers], u_edges])
        u_nodes = None if u is None else u[node_graph]
        v = update(layer["node"], [aggregate(e, graph.receivers, n), v, u_nodes])
        if "global" in layer:   # absent in a node-level model's last block (nothing reads it)
            u = update(layer["global"], [pool(e, edge_graph, g), pool(v, node_graph, g), u])
        return graph._replace(nodes=v, edges=e, globals=u)

    def init(key, graph):
        graph = with_geometry(graph)
        keys = jax.random.split(key, len(cfg.hidden_sizes) + 1)
        d_v, d_e, d_u, layers = graph.nodes.shape[-1], _width(graph.edges), _width(graph.globals), []
        for i, (k, w) in enumerate(zip(keys, cfg.hidden_sizes)):
            k_e, k_v, k_u = jax.random.split(k, 3)
            layer = {"edge": update_init(k_e, d_e + 2 * d_v + d_u, w, cfg),
                     "node": update_init(k_v, w + d_v + d_u, w, cfg)}
            if cfg.task_level == "graph" or i < len(cfg.hidden_sizes) - 1:
                layer["global"] = update_init(k_u, 2 * w + d_u, w, cfg)
            layers.append(layer)
            d_v = d_e = d_u = w
        return {"layers": layers, "head": L.dense_init(keys[-1], d_v, cfg.num_outputs)}

    def apply(params, graph, *, key=None, train=False):
        graph = with_geometry(graph)
        graph = graph._replace(nodes=dense_features(graph.nodes))
        keys = L.split_key(key, len(params["layers"]))
        for i, layer in enumerate(params["layers"]):
            graph = graph._replace(nodes=dropout(keys[i], graph.nodes, cfg.dropout_rate, train))
            graph = block(layer, graph)
        return L.dense(params["head"], graph.nodes if cfg.task_level == "node" else graph.globals)

    return Model.of(init, apply)


# what every message-passing family says of itself: graphs in, exactly equivariant under node permutations
GRAPH_NETWORK = {"inputs": ("graphs",), "symmetry": "nodes", "exact_symmetry": every_element(("nodes",))}
MODELS = {
    "gcn": ModelEntry(GCNConfig, build_gcn, **GRAPH_NETWORK),
    "gat": ModelEntry(GATConfig, build_gat, **GRAPH_NETWORK),
    "gin": ModelEntry(GINConfig, build_gin, **GRAPH_NETWORK),
    "mpnn": ModelEntry(MPNNConfig, build_mpnn, **GRAPH_NETWORK),
}
