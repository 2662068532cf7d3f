"""Segment operations over a `GraphsTuple` (zoo.graphs): sums, means, maxima and softmaxes of
edge or node values grouped by receiver, node or graph, and graph readouts.

Axis legend: N nodes, E edges, G graphs, S segments, M rows of `data`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from zoo.errors import ConfigError
from zoo.graphs import GraphsTuple


def segment_sum(data: jax.Array, segment_ids: jax.Array, num_segments: int) -> jax.Array:
    """out[s] = sum of data[i] over i with segment_ids[i] == s. data [M, ...] -> [S, ...]."""
    return jax.ops.segment_sum(data, segment_ids, num_segments)


def segment_mean(data: jax.Array, segment_ids: jax.Array, num_segments: int) -> jax.Array:
    """Mean per segment; empty segments give 0."""
    total = segment_sum(data, segment_ids, num_segments)
    count = segment_sum(jnp.ones(data.shape[:1], data.dtype), segment_ids, num_segments)
    return total / jnp.maximum(count, 1).reshape((-1,) + (1,) * (data.ndim - 1))


def segment_max(data: jax.Array, segment_ids: jax.Array, num_segments: int) -> jax.Array:
    """Max per segment; empty segments give 0 (not -inf, so padding stays finite)."""
    out = jax.ops.segment_max(data, segment_ids, num_segments)
    return jnp.where(jnp.isfinite(out), out, jnp.zeros_like(out))


def segment_softmax(logits: jax.Array, segment_ids: jax.Array, num_segments: int) -> jax.Array:
    """softmax over the entries of each segment: exp(x_i - m_s) / sum_{j in s} exp(x_j - m_s),
    m_s the segment max (held constant in the gradient; it cancels). logits [M, ...]."""
    m = jax.lax.stop_gradient(segment_max(logits, segment_ids, num_segments))
    z = jnp.exp(logits - m[segment_ids])
    return z / segment_sum(z, segment_ids, num_segments)[segment_ids]


SEGMENT_REDUCERS = {"sum": segment_sum, "mean": segment_mean, "max": segment_max}


def node_graph_index(graph: GraphsTuple, num_nodes: int) -> jax.Array:
    """int32 [N]: the graph each node belongs to."""
    return jnp.repeat(jnp.arange(graph.n_node.shape[0]), graph.n_node, total_repeat_length=num_nodes)


def edge_graph_index(graph: GraphsTuple) -> jax.Array:
    """int32 [E]: the graph each edge belongs to."""
    return jnp.repeat(jnp.arange(graph.n_edge.shape[0]), graph.n_edge,
                      total_repeat_length=graph.senders.shape[0])


def readout(values: jax.Array, index: jax.Array, num_graphs: int, kind: str) -> jax.Array:
    """Sum, mean or max of node (or edge) values [N, D] per graph -> [G, D]."""
    if kind not in SEGMENT_REDUCERS:
        raise ConfigError(f"unknown readout {kind!r}; valid: {', '.join(SEGMENT_REDUCERS)}")
    return SEGMENT_REDUCERS[kind](values, index, num_graphs)
