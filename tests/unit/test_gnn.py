"""GNN family: GCN by hand on 3 nodes, permutation equivariance/invariance, padding invariance,
jit == no-jit, bounded compiles, edge softmax, datasets, and torch_geometric cross-checks."""
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import graphs as G
from zoo.data import graphs as data
from zoo.models import build, gnn
from zoo.models import segments as S

MODELS = ["gcn", "gat", "gin", "mpnn"]
CORA = Path(__file__).resolve().parents[2] / "zoo" / "data" / "files" / "planetoid" / "cora.npz"   # ships with zoo


def random_graph(rng, num_nodes, num_edges, d=5):
    """One graph with random features [N, d] and random directed edges (self loops excluded)."""
    senders = rng.integers(0, num_nodes, num_edges)
    receivers = (senders + rng.integers(1, num_nodes, num_edges)) % num_nodes
    return G.GraphsTuple(nodes=rng.normal(size=(num_nodes, d)).astype(np.float32), edges=None,
                         senders=senders.astype(np.int32), receivers=receivers.astype(np.int32),
                         globals=None, n_node=np.array([num_nodes], np.int32),
                         n_edge=np.array([num_edges], np.int32))


def graph_batch(seed=0, sizes=(5, 7, 4)):
    rng = np.random.default_rng(seed)
    return G.batch_graphs([random_graph(rng, n, 2 * n) for n in sizes])


def model_and_params(name, level, graph, num_outputs=3):
    model = build(name, num_outputs=num_outputs, task_level=level)
    return model, model.init(jax.random.PRNGKey(0), graph)


# ----------------------------------------------------------------------------- closed form
def test_gcn_layer_on_3_node_path_matches_hand_normalised_adjacency():
    # path 0 - 1 - 2; with self loops the degrees are 2, 3, 2
    graph = data.undirected_graph(np.arange(6.0).reshape(3, 2), np.array([[0, 1], [1, 2]]))
    a_hat = np.array([[1 / 2, 1 / math.sqrt(6), 0],
                      [1 / math.sqrt(6), 1 / 3, 1 / math.sqrt(6)],
                      [0, 1 / math.sqrt(6), 1 / 2]])
    params = {"kernel": jnp.array([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]]), "bias": jnp.array([0.1, 0.2, 0.3])}
    out = gnn.gcn_layer(params, jnp.asarray(graph.nodes), graph, gnn.gcn_norm(graph, 3))
    expected = a_hat @ graph.nodes @ np.asarray(params["kernel"]) + np.asarray(params["bias"])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_segment_softmax_sums_to_one_per_receiver_and_readouts():
    logits = jnp.array([1.0, 2.0, 3.0, -1.0, 0.5])
    ids = jnp.array([0, 0, 2, 2, 2])
    p = S.segment_softmax(logits, ids, 3)
    np.testing.assert_allclose(S.segment_sum(p, ids, 3), [1.0, 0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(p[:2], jax.nn.softmax(logits[:2]), rtol=1e-6)
    values = jnp.array([[1.0], [3.0], [2.0], [-4.0], [0.0]])
    np.testing.assert_allclose(S.readout(values, ids, 3, "mean"), [[2.0], [0.0], [-2 / 3]], rtol=1e-6)
    np.testing.assert_allclose(S.readout(values, ids, 3, "max"), [[3.0], [0.0], [2.0]])  # empty -> 0


def test_dropout_keeps_one_minus_rate_and_preserves_the_mean():
    x = jnp.ones((300, 700))
    y = gnn.dropout(jax.random.PRNGKey(0), x, 0.6, train=True)
    kept = float((y != 0).mean())
    assert abs(kept - 0.4) < 0.005 and abs(float(y.mean()) - 1.0) < 0.02
    assert np.unique(np.asarray(y)).tolist() == [0.0, pytest.approx(2.5, rel=1e-4)]
    assert gnn.dropout(None, x, 0.6, train=False) is x


@pytest.mark.parametrize("name", ["gcn", "gat", "gin"])
def test_sparse_features_give_the_dense_outputs(name):
    from jax.experimental import sparse
    graph = graph_batch(seed=3)
    nodes = np.where(np.abs(graph.nodes) > 1.0, graph.nodes, 0.0)
    dense, sparse_graph = graph._replace(nodes=nodes), graph._replace(nodes=sparse.BCOO.fromdense(nodes))
    model, params = model_and_params(name, "node", dense)
    apply = jax.jit(model.apply, static_argnames="train")
    np.testing.assert_allclose(apply(params, sparse_graph), apply(params, dense), rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(apply(params, sparse_graph, key=jax.random.PRNGKey(1), train=True)))


# ----------------------------------------------------------------------------- batching, padding
def test_batch_graphs_offsets_indices_and_pad_graphs_layout():
    rng = np.random.default_rng(0)
    a, b = random_graph(rng, 3, 4), random_graph(rng, 2, 2)
    batch = G.batch_graphs([a, b])
    np.testing.assert_array_equal(batch.senders, np.concatenate([a.senders, b.senders + 3]))
    np.testing.assert_array_equal(batch.n_node, [3, 2])
    padded = G.pad_to_bucket(batch)
    assert (padded.num_nodes, len(padded.senders), padded.num_graphs) == (8, 8, 4)
    np.testing.assert_array_equal(padded.n_node, [3, 2, 3, 0])
    assert set(padded.senders[6:]) == {5} and set(padded.receivers[6:]) == {5}
    node_mask, edge_mask, graph_mask = G.padding_masks(padded, 2)
    np.testing.assert_array_equal(node_mask, [1] * 5 + [0] * 3)
    np.testing.assert_array_equal(edge_mask, [1] * 6 + [0] * 2)
    np.testing.assert_array_equal(graph_mask, [1, 1, 0, 0])


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("level", ["node", "graph"])
def test_padding_never_changes_real_outputs(name, level):
    graph = graph_batch()
    model, params = model_and_params(name, level, graph)
    small, large = G.pad_graphs(graph, 17, 32, 4), G.pad_graphs(graph, 40, 64, 9)
    apply = jax.jit(model.apply)
    out_small, out_large = apply(params, small), apply(params, large)
    real = graph.num_nodes if level == "node" else graph.num_graphs
    np.testing.assert_allclose(out_small[:real], out_large[:real], rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(out_large))


# ----------------------------------------------------------------------------- symmetry
def permute_within_graphs(graph, rng):
    """Relabel the nodes of each graph by a random permutation (blocks stay contiguous)."""
    offsets = np.concatenate([[0], np.cumsum(graph.n_node)[:-1]])
    perm = np.concatenate([o + rng.permutation(n) for o, n in zip(offsets, graph.n_node)])  # new -> old
    inverse = np.argsort(perm)                                                               # old -> new
    permuted = graph._replace(nodes=graph.nodes[perm], senders=inverse[graph.senders].astype(np.int32),
                              receivers=inverse[graph.receivers].astype(np.int32))
    return permuted, perm


@pytest.mark.parametrize("name", MODELS)
def test_node_permutation_permutes_node_outputs_and_keeps_graph_outputs(name):
    graph = G.pad_to_bucket(graph_batch(seed=1))
    permuted, perm = permute_within_graphs(graph, np.random.default_rng(0))
    model, params = model_and_params(name, "node", graph)
    apply = jax.jit(model.apply)
    np.testing.assert_allclose(apply(params, permuted), apply(params, graph)[perm], rtol=1e-4, atol=1e-5)
    model, params = model_and_params(name, "graph", graph)
    apply = jax.jit(model.apply)
    np.testing.assert_allclose(apply(params, permuted), apply(params, graph), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_jit_equals_no_jit_with_dropout(name):
    graph = G.pad_to_bucket(graph_batch(seed=2))
    model = build(name, num_outputs=3, dropout_rate=0.3)
    params = model.init(jax.random.PRNGKey(0), graph)
    key = jax.random.PRNGKey(1)
    eager = model.apply(params, graph, key=key, train=True)
    jitted = jax.jit(lambda p, g, k: model.apply(p, g, key=k, train=True))(params, graph, key)
    np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-5)
    assert not np.allclose(eager, model.apply(params, graph))  # dropout did something


def test_bucketed_padding_bounds_the_number_of_compiles():
    traces = []

    @jax.jit
    def mean_readout(graph):
        traces.append(1)
        index = S.node_graph_index(graph, graph.nodes.shape[0])
        return S.readout(graph.nodes, index, graph.n_node.shape[0], "mean")

    rng = np.random.default_rng(0)
    shapes, batches = set(), 24
    for num_graphs in range(1, batches + 1):
        graph = G.pad_to_bucket(G.batch_graphs([random_graph(rng, int(n), 2 * int(n))
                                                for n in rng.integers(3, 9, num_graphs)]))
        shapes.add(jax.tree.map(np.shape, graph))
        mean_readout(graph)
    # one compile per bucket; power-of-two buckets in N, E, G grow together with the batch
    assert len(traces) == len(shapes) <= batches // 2


def test_graph_cycles_batches_have_one_static_shape_and_compile_once():
    ds = data.load_graph_cycles(data.GraphCyclesConfig(num_train=40, num_test=10))
    model = build("gin", num_outputs=3, task_level="graph")
    traces = []

    @jax.jit
    def forward(params, graph):
        traces.append(1)
        return model.apply(params, graph)

    batches = [ds.train_batch(0, step, 8) for step in range(6)] + list(ds.eval_batches(8))
    params = model.init(jax.random.PRNGKey(0), batches[0]["x"])
    for batch in batches:
        assert forward(params, batch["x"]).shape == (9, 3) and batch["y"].shape == (9,)
    assert len(traces) == 1
    assert sum(float(b["mask"].sum()) for b in ds.eval_batches(8)) == 10


# ----------------------------------------------------------------------------- datasets
def test_karate_and_graph_cycles_datasets():
    karate = data.load_karate(data.KarateConfig())
    batch = karate.train_batch(0, 0, 1)
    assert batch["x"].nodes.shape == (34, 34) and batch["x"].senders.shape == (156,)
    assert batch["y"][0] == 0 and batch["y"][33] == 1 and batch["mask"].sum() == 2
    ds = data.load_graph_cycles(data.GraphCyclesConfig(num_train=30, num_test=5, seed=3))
    again = data.load_graph_cycles(data.GraphCyclesConfig(num_train=30, num_test=5, seed=3))
    for g, label in zip(ds.train_graphs, ds.train["y"]):
        assert len(g.senders) // 2 - g.num_nodes + 1 == label          # the cyclomatic number
    np.testing.assert_array_equal(ds.train_graphs[7].senders, again.train_graphs[7].senders)


def test_planetoid_cora_public_split():
    ds = data.load_planetoid(data.PlanetoidConfig(path=str(CORA)))
    batch = ds.train_batch(0, 0, 1)
    assert batch["x"].nodes.shape == (2708, 1433) and ds.model_defaults == {"num_outputs": 7}
    assert batch["mask"].sum() == 140 and next(ds.eval_batches(1))["mask"].sum() == 1000
    val = next(ds.val_batches(1))["mask"]
    assert ds.has_validation() and val.sum() == 500 and not (val * batch["mask"]).any()
    dense = data.load_planetoid(data.PlanetoidConfig(path=str(CORA), sparse_features=False)).graph.nodes
    np.testing.assert_allclose(dense.sum(1)[dense.sum(1) > 0], 1.0, rtol=1e-5)      # row-normalised
    np.testing.assert_array_equal(batch["x"].nodes.todense(), dense)


# ----------------------------------------------------------------------------- torch_geometric
def to_torch_edges(torch, graph):
    return torch.tensor(np.stack([graph.senders, graph.receivers]), dtype=torch.long)


@pytest.mark.crosscheck
def test_gcn_matches_torch_geometric_gcnconv():
    torch = pytest.importorskip("torch")
    pyg_nn = pytest.importorskip("torch_geometric.nn")
    graph = graph_batch(seed=4)
    layer = {"kernel": jax.random.normal(jax.random.PRNGKey(0), (5, 4)), "bias": jnp.arange(4.0)}
    conv = pyg_nn.GCNConv(5, 4)
    with torch.no_grad():
        conv.lin.weight.copy_(torch.tensor(np.asarray(layer["kernel"]).T))
        conv.bias.copy_(torch.tensor(np.asarray(layer["bias"])))
    expected = conv(torch.tensor(graph.nodes), to_torch_edges(torch, graph)).detach().numpy()
    ours = gnn.gcn_layer(layer, jnp.asarray(graph.nodes), graph, gnn.gcn_norm(graph, graph.num_nodes))
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.crosscheck
@pytest.mark.parametrize("concat", [True, False])
def test_gat_matches_torch_geometric_gatconv(concat):
    torch = pytest.importorskip("torch")
    pyg_nn = pytest.importorskip("torch_geometric.nn")
    graph = graph_batch(seed=5)
    heads, width = 3, 4
    layer = gnn.gat_layer_init(jax.random.PRNGKey(1), 5, heads, width, concat=concat)
    conv = pyg_nn.GATConv(5, width, heads=heads, concat=concat, negative_slope=0.2)
    with torch.no_grad():
        conv.lin.weight.copy_(torch.tensor(np.asarray(layer["kernel"]).T))
        conv.att_src.copy_(torch.tensor(np.asarray(layer["attn_src"]))[None])
        conv.att_dst.copy_(torch.tensor(np.asarray(layer["attn_dst"]))[None])
        conv.bias.copy_(torch.arange(conv.bias.shape[0], dtype=torch.float32))
    layer["bias"] = jnp.arange(float(conv.bias.shape[0]))
    expected = conv(torch.tensor(graph.nodes), to_torch_edges(torch, graph)).detach().numpy()
    cfg = gnn.GATConfig(num_outputs=2)
    ours = gnn.gat_layer(layer, jnp.asarray(graph.nodes), gnn.with_self_loops(graph, graph.num_nodes),
                         concat=concat, cfg=cfg, key=None, train=False)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
