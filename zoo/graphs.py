"""Graphs as arrays: the `GraphsTuple`, batching and padding to static sizes.

Shared ground of the datasets (zoo.data) and the graph models (zoo.models.gnn); segment
operations over it are in zoo.models.segments.

A batch of G graphs is one big disconnected graph (Battaglia et al. 2018; jraph's layout).
Axis legend: N nodes, E edges, G graphs (all summed over the batch), D feature axes.

    GraphsTuple field   shape                  meaning
    nodes               [N, D_node] or None     node features
    edges               [E, D_edge] or None     edge features
    senders             int32 [E]               index of each edge's source node
    receivers           int32 [E]               index of each edge's target node
    globals             [G, D_global] or None   graph-level features
    n_node              int32 [G]               nodes per graph; graph g owns a contiguous block
    n_edge              int32 [G]               edges per graph; likewise contiguous
    positions           [N, 3] or None          node coordinates of a geometric graph (any width)
    velocities          [N, 3] or None          node velocities, beside the positions

Positions and velocities are batched and padded as node rows, but kept apart from `nodes`:
they transform under rotations and translations of space, the features do not, so an
E(n)-equivariant model (zoo.models.egnn) treats them apart; a plain GNN reads them as features.

An undirected edge is two directed edges. Messages flow from senders to receivers. `nodes` may
also be a jax.experimental.sparse.BCOO [N, D] (models only; batching and padding need arrays).

Padding (`pad_graphs`) appends one padding graph that owns every padding node and edge (each
padding edge joins the first padding node to itself), then empty graphs up to the target
count. Padding edges therefore touch padding nodes only, and padding nodes belong to a graph
of their own, so no real node's or graph's output depends on padding: models need no masks,
only losses do (`padding_masks`). `bucket_sizes` rounds sizes up to powers of two, so a stream
of graphs of any sizes compiles `jit` once per bucket.

Batching and padding work on NumPy arrays (the data pipeline).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import jax


class GraphsTuple(NamedTuple):
    nodes: jax.Array | np.ndarray | None
    edges: jax.Array | np.ndarray | None
    senders: jax.Array | np.ndarray
    receivers: jax.Array | np.ndarray
    globals: jax.Array | np.ndarray | None
    n_node: jax.Array | np.ndarray
    n_edge: jax.Array | np.ndarray
    positions: jax.Array | np.ndarray | None = None
    velocities: jax.Array | np.ndarray | None = None

    @property
    def num_nodes(self) -> int:
        """N: the static node count (rows of `nodes`, else the sum of n_node)."""
        return self.nodes.shape[0] if self.nodes is not None else int(np.sum(self.n_node))

    @property
    def num_graphs(self) -> int:
        return self.n_node.shape[0]


# ----------------------------------------------------------------------------- batching
def batch_graphs(graphs: Sequence[GraphsTuple]) -> GraphsTuple:
    """Concatenate graphs (each possibly a batch itself) into one; edge indices are offset."""
    offsets = np.cumsum([0] + [g.num_nodes for g in graphs[:-1]])

    def cat(field):
        parts = [getattr(g, field) for g in graphs]
        return None if parts[0] is None else np.concatenate(parts)

    return GraphsTuple(
        nodes=cat("nodes"), edges=cat("edges"), globals=cat("globals"),
        positions=cat("positions"), velocities=cat("velocities"),
        senders=np.concatenate([g.senders + o for g, o in zip(graphs, offsets)]).astype(np.int32),
        receivers=np.concatenate([g.receivers + o for g, o in zip(graphs, offsets)]).astype(np.int32),
        n_node=cat("n_node").astype(np.int32), n_edge=cat("n_edge").astype(np.int32))


# ----------------------------------------------------------------------------- padding
def _next_power_of_two(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def bucket_sizes(graph: GraphsTuple) -> tuple[int, int, int]:
    """Static (N, E, G) to pad to: the next powers of two above the real sizes, with room for
    at least one padding node and one padding graph."""
    return (_next_power_of_two(graph.num_nodes + 1), _next_power_of_two(max(int(np.sum(graph.n_edge)), 1)),
            _next_power_of_two(graph.num_graphs + 1))


def _pad_rows(x: np.ndarray | None, count: int) -> np.ndarray | None:
    if x is None:
        return None
    return np.concatenate([x, np.zeros((count,) + x.shape[1:], x.dtype)])


def pad_graphs(graph: GraphsTuple, n_node: int, n_edge: int, n_graph: int) -> GraphsTuple:
    """Pad to exactly n_node nodes, n_edge edges and n_graph graphs (see the module docstring).

    Needs n_node > N and n_graph > G: the padding graph holds at least one node."""
    num_nodes, num_edges, num_graphs = graph.num_nodes, int(np.sum(graph.n_edge)), graph.num_graphs
    if n_node <= num_nodes or n_edge < num_edges or n_graph <= num_graphs:
        raise ValueError(f"cannot pad a graph of (N, E, G) = ({num_nodes}, {num_edges}, {num_graphs}) "
                         f"to ({n_node}, {n_edge}, {n_graph}): need N < {n_node}, E <= {n_edge}, G < {n_graph}")
    pad_nodes, pad_edges, pad_graphs_ = n_node - num_nodes, n_edge - num_edges, n_graph - num_graphs
    first_pad_node = np.full(pad_edges, num_nodes, np.int32)
    empty = np.zeros(pad_graphs_ - 1, np.int32)
    return GraphsTuple(
        nodes=_pad_rows(graph.nodes, pad_nodes), edges=_pad_rows(graph.edges, pad_edges),
        globals=_pad_rows(graph.globals, pad_graphs_),
        positions=_pad_rows(graph.positions, pad_nodes), velocities=_pad_rows(graph.velocities, pad_nodes),
        senders=np.concatenate([graph.senders, first_pad_node]).astype(np.int32),
        receivers=np.concatenate([graph.receivers, first_pad_node]).astype(np.int32),
        n_node=np.concatenate([graph.n_node, [pad_nodes], empty]).astype(np.int32),
        n_edge=np.concatenate([graph.n_edge, [pad_edges], empty]).astype(np.int32))


def pad_to_bucket(graph: GraphsTuple) -> GraphsTuple:
    """`pad_graphs` to `bucket_sizes(graph)`."""
    return pad_graphs(graph, *bucket_sizes(graph))


def padding_masks(graph: GraphsTuple, num_real_graphs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float masks (node [N], edge [E], graph [G]): 1 for the first `num_real_graphs` graphs'
    nodes, edges and themselves, 0 for padding."""
    graph_mask = (np.arange(graph.num_graphs) < num_real_graphs).astype(np.float32)
    node_mask = np.repeat(graph_mask, np.asarray(graph.n_node))
    edge_mask = np.repeat(graph_mask, np.asarray(graph.n_edge))
    return node_mask, edge_mask, graph_mask
