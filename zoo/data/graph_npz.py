"""`graph_npz`: graph classification on the user's graphs, many small graphs in one .npz.

Axis legend: G graphs in the file, N = sum(n_node) nodes, E = sum(n_edge) edges, D node
features, D_e edge features. The file holds (numpy.savez, no objects):

    n_node     int [G]         nodes of each graph
    n_edge     int [G]         directed edges of each graph (list an undirected edge both ways)
    senders    int [E]         source node of each edge, numbered within its graph: 0 .. n_node[g] - 1
    receivers  int [E]         target node of each edge, numbered likewise
    labels     int [G]         class of each graph, 0 .. K - 1
    nodes      float [N, D]    node features, graph after graph (optional; absent: ones [N, 1])
    edges      float [E, D_e]  edge features (optional)
    test       bool [G]        graphs held out for testing (optional; absent: data.test_fraction
                               of each class, at random from data.split_seed)

Graph g owns nodes sum(n_node[:g]) .. + n_node[g] and edges sum(n_edge[:g]) .. + n_edge[g].
Batches are GraphBatchDataset's (zoo.data.graphs): B graphs padded to one static size, so the
model compiles once; y = int32 [B + 1] and mask = the graph mask.
"""
from __future__ import annotations

import dataclasses

import numpy as np

import zoo.data.tables as tables
import zoo.data.validate as validate
from zoo.data.base import held_out
from zoo.data.graphs import GraphBatchDataset
from zoo.errors import ConfigError
from zoo.graphs import GraphsTuple

REQUIRED = ("n_node", "n_edge", "senders", "receivers", "labels")
OPTIONAL = ("nodes", "edges", "test")


@dataclasses.dataclass(frozen=True)
class GraphNpzConfig:
    path: str | None = None          # an .npz in the format of the module docstring
    test_fraction: float = 0.2       # per class, when the file has no `test` array
    split_seed: int = 0


def _read(path: str | None) -> dict[str, np.ndarray]:
    file = tables.existing_file(path, what="an .npz of graphs (format: zoo/data/graph_npz.py)")
    if tables.file_format(file) != "npz":
        raise ConfigError(f"data.path={path!r}: graph_npz reads an .npz file (format: zoo/data/graph_npz.py)")
    present = tables.npz_names(file)
    missing = [k for k in REQUIRED if k not in present]
    if missing:
        raise ConfigError(f"{file} has no array {missing[0]!r} (it has {', '.join(present)}); graph_npz needs "
                          f"{', '.join(REQUIRED)} (format: zoo/data/graph_npz.py)")
    names = [k for k in REQUIRED + OPTIONAL if k in present]
    return tables.load_npz(file, {k: k for k in names})


def _check_sizes(a: dict[str, np.ndarray], path: str) -> None:
    g = len(a["labels"])
    counts = {"n_node": (a["n_node"], g), "n_edge": (a["n_edge"], g), "test": (a.get("test"), g),
              "senders": (a["senders"], int(a["n_edge"].sum())), "receivers": (a["receivers"], int(a["n_edge"].sum())),
              "nodes": (a.get("nodes"), int(a["n_node"].sum())), "edges": (a.get("edges"), int(a["n_edge"].sum()))}
    validate.rows(g, path, "graphs")
    for name, (x, expected) in counts.items():
        if x is not None and (x.ndim == 0 or len(x) != expected):
            raise ConfigError(f"{path}: {name} has {len(x) if x.ndim else 0} rows, expected {expected} "
                              f"(format: zoo/data/graph_npz.py)")
    for name in ("n_node", "n_edge", "senders", "receivers"):
        if a[name].dtype.kind not in "iu" or (a[name] < 0).any():
            raise ConfigError(f"{path}: {name} must hold non-negative integers, got {a[name].dtype}")
    if (a["n_node"] < 1).any():
        raise ConfigError(f"{path}: graph {int(np.argmin(a['n_node']))} has no nodes; every graph needs one")


def _check_edges(a: dict[str, np.ndarray], path: str) -> None:
    """Each edge's nodes lie within its own graph."""
    graph_of_edge = np.repeat(np.arange(len(a["n_edge"])), a["n_edge"])
    limit = a["n_node"][graph_of_edge]
    for name in ("senders", "receivers"):
        outside = a[name] >= limit
        if outside.any():
            e = int(np.argmax(outside))
            g = int(graph_of_edge[e])
            raise ConfigError(f"{path}: {name}[{e}] = {a[name][e]} but its graph {g} has {a['n_node'][g]} nodes; "
                              f"number nodes within each graph from 0")


def split_graphs(a: dict[str, np.ndarray]) -> list[GraphsTuple]:
    """One GraphsTuple per graph of the file."""
    node_at = np.concatenate([[0], np.cumsum(a["n_node"])])
    edge_at = np.concatenate([[0], np.cumsum(a["n_edge"])])
    nodes = a["nodes"].reshape(int(node_at[-1]), -1) if "nodes" in a else np.ones((int(node_at[-1]), 1), np.float32)
    edges = a["edges"].reshape(int(edge_at[-1]), -1) if "edges" in a else None
    graphs = []
    for g in range(len(a["labels"])):
        n, e = slice(node_at[g], node_at[g + 1]), slice(edge_at[g], edge_at[g + 1])
        graphs.append(GraphsTuple(
            nodes=nodes[n].astype(np.float32), edges=None if edges is None else edges[e].astype(np.float32),
            senders=a["senders"][e].astype(np.int32), receivers=a["receivers"][e].astype(np.int32),
            globals=None, n_node=a["n_node"][g:g + 1].astype(np.int32), n_edge=a["n_edge"][g:g + 1].astype(np.int32)))
    return graphs


def load(cfg: GraphNpzConfig) -> GraphBatchDataset:
    a = _read(cfg.path)
    _check_sizes(a, cfg.path)
    _check_edges(a, cfg.path)
    for name in ("nodes", "edges"):
        if name in a:
            validate.features(a[name], f"{cfg.path}: {name}")
    labels, _, _ = validate.targets(a["labels"], "classification", None, f"{cfg.path}: labels")
    if "test" in a:
        train, test = np.flatnonzero(~a["test"].astype(bool)), np.flatnonzero(a["test"].astype(bool))
    elif 0 < cfg.test_fraction < 1:
        train, test = held_out(len(labels), cfg.test_fraction, cfg.split_seed, labels)
    else:
        raise ConfigError(f"data.test_fraction={cfg.test_fraction} must be in (0, 1): {cfg.path} has no `test` array")
    if len(train) == 0 or len(test) == 0:
        raise ConfigError(f"{cfg.path}: the split leaves no {'training' if len(train) == 0 else 'test'} graphs; "
                          f"give more graphs or another data.test_fraction")
    graphs = split_graphs(a)
    d = graphs[0].nodes.shape[1]
    pre = {"format": "graph_npz", "node_features": d, "task": "classification",
           "edge_features": None if "edges" not in a else int(np.prod(a["edges"].shape[1:]))}
    return GraphBatchDataset(task="classification", model_defaults={"num_outputs": int(labels.max()) + 1},
                             shardable=False, preprocessing=pre,
                             train={"y": labels[train], "index": np.arange(len(train))},
                             test={"y": labels[test], "index": np.arange(len(test))},
                             train_graphs=[graphs[i] for i in train], test_graphs=[graphs[i] for i in test],
                             max_nodes=int(a["n_node"].max()), max_edges=max(int(a["n_edge"].max()), 1))
