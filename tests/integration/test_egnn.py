"""EGNN and the charged N-body data: closed-form checks of the simulation, and the symmetry the
architecture is built for (E(3) and node permutations, exact to float32 rounding), against a
plain graph network reading the same coordinates as features."""
import jax
import numpy as np
import pytest

from zoo.data import nbody
from zoo.models import build, egnn
from zoo.models.segments import segment_mean, segment_sum
from zoo.probes import symmetry


def random_batch(seed=0, systems=3, n=5):
    """A padded N-body graph batch from random states (the model does not care about physics)."""
    rng = np.random.default_rng(seed)
    rows = {"positions": rng.normal(size=(systems, n, 3)), "velocities": rng.normal(size=(systems, n, 3)),
            "charges": rng.choice([-1.0, 1.0], size=(systems, n, 1)), "y": rng.normal(size=(systems, n, 3))}
    rows = {k: v.astype(np.float32) for k, v in rows.items()}
    return nbody.graph_batch({**rows, "mask": np.ones(systems, np.float32)})


# ----------------------------------------------------------------------------- the simulation
def test_forces_are_coulomb_and_sum_to_zero():
    x = np.array([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 4.0]]])
    q = np.array([[1.0, -1.0, 1.0]])
    f = nbody.forces(x, q)
    # on particle 0: q0 q1 (x0 - x1)/8 + q0 q2 (x0 - x2)/125
    expected = -1.0 * np.array([-2.0, 0, 0]) / 8 + np.array([0.0, -3.0, -4.0]) / 125
    np.testing.assert_allclose(f[0, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(f.sum(axis=1), 0.0, atol=1e-12)   # Newton's third law


def test_simulation_conserves_momentum_and_is_deterministic():
    a = nbody.simulate(np.random.default_rng(0), 4, 5)
    b = nbody.simulate(np.random.default_rng(0), 4, 5)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # equal masses, pairwise forces: the velocities' sum is the same at every step, so the centre of
    # mass moves in a straight line between the two saved times (1,000 steps of dt = 0.001); the
    # force clip of a close encounter breaks this (seed 7's fourth system), none happens here
    centre_in, centre_out = a["positions"].mean(1), a["target"].mean(1)
    np.testing.assert_allclose(centre_out, centre_in + a["velocities"].mean(1) * 1.0, atol=1e-9)


def test_graph_batch_is_complete_graphs_plus_padding():
    batch = random_batch(systems=2, n=4)
    g = batch["x"]
    assert g.n_node.tolist() == [4, 4, 1] and g.n_edge.tolist() == [12, 12, 0]
    pairs = set(zip(g.senders.tolist(), g.receivers.tolist()))
    assert pairs == {(j, i) for s in (0, 4) for i in range(s, s + 4) for j in range(s, s + 4) if i != j}
    assert batch["mask"].tolist() == [1.0] * 8 + [0.0]
    np.testing.assert_allclose(g.nodes[:8, 0], np.linalg.norm(g.velocities[:8], axis=-1), rtol=1e-6)


def test_load_caches_the_splits(tmp_path):
    cfg = nbody.NBodyConfig(num_train=3, num_val=2, num_test=2, cache_dir=str(tmp_path))
    first = nbody.load(cfg)
    assert len(list((tmp_path / "nbody").glob("*.npz"))) == 1
    again = nbody.load(cfg)
    np.testing.assert_array_equal(first.train["y"], again.train["y"])
    np.testing.assert_array_equal(first.val["positions"], again.val["positions"])
    assert first.train["positions"].shape == (3, 5, 3)


# ----------------------------------------------------------------------------- the symmetry
def model_and_params(name, batch, **hyper):
    model = build(name, **hyper)
    return model, model.init(jax.random.PRNGKey(0), batch["x"])


@pytest.mark.parametrize("use_velocities", [True, False])
def test_egnn_is_e3_equivariant_and_permutation_equivariant(use_velocities):
    batch = random_batch()
    # a large coordinate gain, so that the layers move the coordinates a lot: a strict test
    model, params = model_and_params("egnn", batch, hidden_size=16, num_layers=3, coordinate_init_gain=1.0,
                                     use_velocities=use_velocities)
    f = jax.jit(lambda g: model.apply(params, g))
    moved = np.linalg.norm(f(batch["x"]) - batch["x"].positions) / np.linalg.norm(batch["x"].positions)
    assert moved > 0.1
    assert symmetry.euclidean_errors(f, batch["x"], 4).max() < 1e-5
    assert symmetry.node_permutation_errors(f, batch["x"], 4, node_level=True).max() < 1e-5


@pytest.mark.parametrize("name, hyper", [("mpnn", {"hidden_sizes": (16, 16), "num_outputs": 3}),
                                         ("egnn", {"hidden_size": 16, "num_layers": 2, "equivariant": False})])
def test_a_gnn_reading_coordinates_as_features_is_not_e3_equivariant(name, hyper):
    batch = random_batch()
    model, params = model_and_params(name, batch, **hyper)
    f = jax.jit(lambda g: model.apply(params, g))
    assert symmetry.euclidean_errors(f, batch["x"], 4).min() > 1e-2
    assert symmetry.node_permutation_errors(f, batch["x"], 4, node_level=True).max() < 1e-5


def reference_egnn(params, graph, equivariant=True):
    """EGNN (eqs. 3-7) and its GNN baseline read off the paper, phi_e on the concatenation
    [h_i, h_j, ||x_i - x_j||^2, a_ij] of each edge: what the model computes with its first
    kernel split per node."""
    act, i, j, n = jax.nn.silu, graph.receivers, graph.senders, graph.nodes.shape[0]
    x, v = graph.positions, graph.velocities
    h = egnn.L.dense(params["embed"], graph.nodes if equivariant else np.concatenate([x, v], -1))
    a = np.concatenate([graph.edges, np.sum((x[i] - x[j]) ** 2, -1, keepdims=True)], -1) if equivariant else graph.edges
    for layer in params["layers"]:
        radial = [np.sum((x[i] - x[j]) ** 2, -1, keepdims=True)] if equivariant else []
        m = egnn.mlp(layer["edge"], np.concatenate([h[i], h[j], *radial, a], -1), act)
        if equivariant:
            phi_x = egnn.mlp(layer["coordinate"], m, act, activate_output=False)
            x = x + egnn.mlp(layer["velocity"], h, act, activate_output=False) * v + segment_mean((x[i] - x[j]) * phi_x, i, n)
        if "node" in layer:
            h = h + egnn.mlp(layer["node"], np.concatenate([h, segment_sum(m, i, n)], -1), act, activate_output=False)
    return x if equivariant else egnn.mlp(params["decoder"], h, act, activate_output=False)


@pytest.mark.parametrize("equivariant", [True, False])
def test_the_split_edge_kernel_computes_the_equations(equivariant):
    batch = random_batch()
    model, params = model_and_params("egnn", batch, hidden_size=16, num_layers=3, coordinate_init_gain=1.0,
                                     equivariant=equivariant)
    np.testing.assert_allclose(jax.jit(model.apply)(params, batch["x"]), reference_egnn(params, batch["x"], equivariant),
                               rtol=1e-5, atol=1e-5)


def test_random_isometries_are_orthogonal_with_both_orientations():
    rng = np.random.default_rng(0)
    dets = []
    for _ in range(20):
        q, _ = symmetry.random_isometry(rng, 3)
        np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-6)
        dets.append(np.linalg.det(q))
    assert min(dets) < -0.99 and max(dets) > 0.99


def test_egnn_without_positions_is_one_clear_error():
    from zoo.data.graphs import undirected_graph
    from zoo.errors import ConfigError

    graph = undirected_graph(np.ones((3, 1)), np.array([[0, 1], [1, 2]]))
    with pytest.raises(ConfigError, match="positions"):
        build("egnn").init(jax.random.PRNGKey(0), graph)
