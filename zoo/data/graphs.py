"""Graph datasets, no downloads: Zachary's karate club, Planetoid citation graphs from a path,
and a generated graph-classification task (count the independent cycles).

Node classification (karate, planetoid): every batch is the whole graph, so `shardable=False`
and `batch_size` is ignored. x = GraphsTuple of one graph, y = int32 labels [N], mask = float
[N]: 1 on the training nodes in `train_batch`, 1 on the evaluation nodes in `eval_batches`
(one batch). Graph classification (graph_cycles): x = a batch of B graphs padded to a fixed
(N, E, G) = (B * max nodes + 1, B * max edges, B + 1), so `jit` compiles once per batch size;
y = int32 [B + 1], mask = graph mask [B + 1] (0 on the padding graph and on empty slots).
Axis legend as in zoo.graphs: N nodes, E edges, G graphs, D features.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from zoo.data.base import ArrayDataset, Dataset
from zoo.errors import ConfigError
from zoo.graphs import GraphsTuple, batch_graphs, pad_graphs, padding_masks


def undirected_graph(nodes: np.ndarray, edges: np.ndarray) -> GraphsTuple:
    """One graph from node features [N, D] and undirected edges [M, 2] (both directions kept)."""
    edges = np.asarray(edges, np.int32).reshape(-1, 2)
    senders = np.concatenate([edges[:, 0], edges[:, 1]])
    receivers = np.concatenate([edges[:, 1], edges[:, 0]])
    return GraphsTuple(nodes=nodes.astype(np.float32), edges=None, senders=senders, receivers=receivers,
                       globals=None, n_node=np.array([len(nodes)], np.int32),
                       n_edge=np.array([len(senders)], np.int32))


# ----------------------------------------------------------------------------- node classification
@dataclasses.dataclass
class NodeDataset(Dataset):
    """One graph whose nodes are the examples; masks pick the training and evaluation nodes."""
    graph: GraphsTuple | None = None
    labels: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))
    train_mask: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    eval_mask: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    val_mask: np.ndarray | None = None      # validation nodes, for model selection (train.select)

    same_every_step = True                  # every training batch is the whole graph

    def _whole_graph(self, mask: np.ndarray) -> dict:
        return {"x": self.graph, "y": self.labels, "mask": mask}

    def train_batch(self, seed: int, step: int, batch_size: int, shard=(0, 1)) -> dict:
        return self._whole_graph(self.train_mask)

    def eval_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        yield self._whole_graph(self.eval_mask)

    def has_validation(self) -> bool:
        return self.val_mask is not None

    def val_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        yield self._whole_graph(self.val_mask)


def _node_mask(num_nodes: int, index: np.ndarray) -> np.ndarray:
    mask = np.zeros(num_nodes, np.float32)
    mask[np.asarray(index)] = 1.0
    return mask


@dataclasses.dataclass(frozen=True)
class KarateConfig:
    train_nodes: tuple[int, ...] = (0, 33)   # one labelled node per club: instructor and administrator


def load_karate(cfg: KarateConfig) -> NodeDataset:
    """Zachary (1977): 34 members, 78 friendships, label = the club each joined after the split.

    Features are one-hot node ids (Kipf & Welling 2017, section 6). Semi-supervised: train on
    `train_nodes`, evaluate on all the other nodes."""
    import networkx as nx

    g = nx.karate_club_graph()
    n = g.number_of_nodes()
    labels = np.array([g.nodes[i]["club"] != "Mr. Hi" for i in range(n)], np.int32)
    train = _node_mask(n, np.array(cfg.train_nodes, np.int64))
    return NodeDataset(task="classification", model_defaults={"num_outputs": 2}, shardable=False,
                       graph=undirected_graph(np.eye(n), np.array(g.edges())), labels=labels,
                       train_mask=train, eval_mask=1.0 - train)


@dataclasses.dataclass(frozen=True)
class PlanetoidConfig:
    path: str | None = None                   # a Planetoid .npz (format: zoo/data/files/README.md)
    eval_split: Literal["test", "val"] = "test"
    normalize_features: bool = True           # divide each row by its sum (Kipf & Welling 2017)
    sparse_features: bool = True              # features as a BCOO matrix (~1% of entries stored)


def _sparse(x: np.ndarray):
    from jax.experimental import sparse
    indices = np.argwhere(x != 0).astype(np.int32)
    return sparse.BCOO((x[x != 0], indices), shape=x.shape, indices_sorted=True, unique_indices=True)


PLANETOID_KEYS = ("features", "num_features", "labels", "labeled", "senders", "receivers",
                  "train_index", "val_index", "test_index")


def _read_planetoid(file: Path, path: str) -> dict[str, np.ndarray]:
    """The arrays of a Planetoid .npz (zoo/data/files/README.md), checked for what the loader
    relies on: every key, one row per node, node indices in range. Never unpickles."""
    try:
        with np.load(file, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
    except (OSError, ValueError, EOFError) as e:  # empty, not a zip, or object arrays (pickle)
        raise ConfigError(f"data.path={path!r}: not a Planetoid .npz file ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else 'unreadable'}); give one in the format of "
                          f"zoo/data/files/README.md") from None
    for key in PLANETOID_KEYS:
        if key not in arrays:
            raise ConfigError(f"data.path={path!r} has no array {key!r}; a Planetoid file holds "
                              f"{', '.join(PLANETOID_KEYS)}")
    n = len(arrays["features"])
    problems = [k for k in ("labels", "labeled") if arrays[k].shape != (n,)]
    problems += [k for k in ("senders", "receivers", "train_index", "val_index", "test_index")
                 if arrays[k].ndim != 1 or (arrays[k].size and not 0 <= arrays[k].min() <= arrays[k].max() < n)]
    if problems:
        raise ConfigError(f"data.path={path!r}: {', '.join(problems)} do not fit its {n} nodes "
                          f"(one label per node, indices in 0..{n - 1})")
    return arrays


def load_planetoid(cfg: PlanetoidConfig) -> NodeDataset:
    """Cora / CiteSeer / PubMed with the public split (Yang et al. 2016): train on
    train_index, evaluate on test_index (or val_index with eval_split=val); val_index is the
    validation split train.select picks parameters on."""
    if cfg.path is None:
        raise ConfigError("planetoid needs data.path=<file>.npz; Cora and CiteSeer ship with zoo: zoo train cora_gcn")
    file = Path(cfg.path).expanduser()
    if not file.is_file():
        raise ConfigError(f"data.path={cfg.path!r}: no such file; give a Planetoid .npz file")
    arrays = _read_planetoid(file, cfg.path)
    features = np.unpackbits(arrays["features"], axis=1)[:, :int(arrays["num_features"])].astype(np.float32)
    if cfg.normalize_features:
        features /= np.maximum(features.sum(1, keepdims=True), 1.0)
    n = len(features)
    labels = np.where(arrays["labeled"], arrays["labels"], 0).astype(np.int32)
    graph = GraphsTuple(nodes=_sparse(features) if cfg.sparse_features else features, edges=None,
                        senders=arrays["senders"].astype(np.int32),
                        receivers=arrays["receivers"].astype(np.int32), globals=None,
                        n_node=np.array([n], np.int32), n_edge=np.array([len(arrays["senders"])], np.int32))
    return NodeDataset(task="classification", model_defaults={"num_outputs": int(labels.max()) + 1},
                       shardable=False, graph=graph, labels=labels,
                       train_mask=_node_mask(n, arrays["train_index"]),
                       eval_mask=_node_mask(n, arrays[f"{cfg.eval_split}_index"]),
                       val_mask=_node_mask(n, arrays["val_index"]))


# ----------------------------------------------------------------------------- graph classification
@dataclasses.dataclass(frozen=True)
class GraphCyclesConfig:
    num_train: int = 2000
    num_test: int = 500
    min_nodes: int = 8
    max_nodes: int = 16
    max_cycles: int = 2      # labels 0..max_cycles
    seed: int = 0


def random_cyclic_graph(rng: np.random.Generator, num_nodes: int, num_cycles: int) -> np.ndarray:
    """Undirected edges [N - 1 + num_cycles, 2] of a connected graph with `num_cycles`
    independent cycles: a uniform random tree (from a Pruefer sequence) plus that many new edges."""
    prufer = rng.integers(0, num_nodes, num_nodes - 2)
    degree = np.ones(num_nodes, np.int64)
    np.add.at(degree, prufer, 1)
    edges = []
    for v in prufer:        # decode: join v to the smallest leaf
        leaf = int(np.flatnonzero(degree == 1)[0])
        edges.append((leaf, int(v)))
        degree[leaf] -= 1
        degree[v] -= 1
    edges.append(tuple(int(u) for u in np.flatnonzero(degree == 1)))
    present = {frozenset(e) for e in edges}
    while len(edges) < num_nodes - 1 + num_cycles:
        u, v = (int(a) for a in rng.choice(num_nodes, 2, replace=False))
        if frozenset((u, v)) not in present:
            present.add(frozenset((u, v)))
            edges.append((u, v))
    return np.array(edges, np.int32)


@dataclasses.dataclass
class GraphBatchDataset(ArrayDataset):
    """Many small graphs; `train`/`test` hold labels "y" and row ids "index" into the graph lists
    (ArrayDataset does the seeded shuffling); batches are padded to one static size."""
    train_graphs: list = dataclasses.field(default_factory=list)
    test_graphs: list = dataclasses.field(default_factory=list)
    max_nodes: int = 1
    max_edges: int = 1

    def padded_batch(self, graphs: list, labels: np.ndarray, size: int) -> dict:
        padded = pad_graphs(batch_graphs(graphs), size * self.max_nodes + 1, size * self.max_edges, size + 1)
        y = np.zeros(size + 1, np.int32)
        y[:len(labels)] = labels
        return {"x": padded, "y": y, "mask": padding_masks(padded, len(graphs))[2]}

    def train_batch(self, seed: int, step: int, batch_size: int, shard=(0, 1)) -> dict:
        rows = self.train_indices(seed, step, batch_size)
        return self.padded_batch([self.train_graphs[i] for i in rows], self.train["y"][rows], batch_size)

    def eval_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        for start in range(0, len(self.test_graphs), batch_size):
            rows = np.arange(start, min(start + batch_size, len(self.test_graphs)))
            yield self.padded_batch([self.test_graphs[i] for i in rows], self.test["y"][rows], batch_size)


def load_graph_cycles(cfg: GraphCyclesConfig) -> GraphBatchDataset:
    """Label = number of independent cycles (cyclomatic number E - N + 1) of a random connected
    graph with min_nodes..max_nodes nodes; node features are constant ones [N, 1], so only the
    structure tells the classes apart. Deterministic from `seed`."""
    if not 3 <= cfg.min_nodes <= cfg.max_nodes:
        raise ConfigError(f"graph_cycles needs 3 <= min_nodes ({cfg.min_nodes}) <= max_nodes ({cfg.max_nodes})")
    if cfg.max_cycles > (cfg.min_nodes - 1) * (cfg.min_nodes - 2) // 2:
        raise ConfigError(f"graph_cycles: a graph of min_nodes={cfg.min_nodes} nodes has at most "
                         f"{(cfg.min_nodes - 1) * (cfg.min_nodes - 2) // 2} independent cycles < max_cycles={cfg.max_cycles}")

    def split(part: int, count: int):
        rng = np.random.default_rng([cfg.seed, part])
        labels = rng.integers(0, cfg.max_cycles + 1, count).astype(np.int32)
        sizes = rng.integers(cfg.min_nodes, cfg.max_nodes + 1, count)
        graphs = [undirected_graph(np.ones((n, 1)), random_cyclic_graph(rng, n, k)) for n, k in zip(sizes, labels)]
        return graphs, {"y": labels, "index": np.arange(count)}

    train_graphs, train = split(0, cfg.num_train)
    test_graphs, test = split(1, cfg.num_test)
    return GraphBatchDataset(task="classification", model_defaults={"num_outputs": cfg.max_cycles + 1},
                             shardable=False, train=train, test=test, train_graphs=train_graphs,
                             test_graphs=test_graphs, max_nodes=cfg.max_nodes,
                             max_edges=2 * (cfg.max_nodes - 1 + cfg.max_cycles))
