"""The probes' mathematics against exact answers: dense Hessians, closed forms, group actions."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from zoo.graphs import GraphsTuple, batch_graphs, pad_graphs
from zoo.models import build, entry
from zoo.probes import calibration, curvature, gradflow, landscape, symmetry


def _classifier_loss(model):
    def loss_fn(params, batch):
        losses = optax.softmax_cross_entropy_with_integer_labels(model.apply(params, batch["x"]), batch["y"])
        return losses.sum(), jnp.float32(len(batch["y"]))
    return loss_fn


def _linear_data(n=256, d=40, k=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x, np.argmax(x @ rng.standard_normal((d, k)), -1).astype(np.int32)


@pytest.fixture(scope="module")
def small_mlp():
    """A 1,109-parameter tanh MLP after 20 Adam steps (a curved, not converged, point), with
    its data in two batches."""
    x, y = _linear_data()
    model = build("mlp", num_outputs=5, depth=1, width=24, activation="tanh")
    params = model.init(jax.random.key(0), x)
    loss_fn = _classifier_loss(model)
    tx = optax.adam(1e-2)
    state = tx.init(params)
    step = jax.jit(lambda p, s: tx.update(jax.grad(lambda p: loss_fn(p, {"x": x, "y": y})[0] / len(y))(p), s))
    for _ in range(20):
        updates, state = step(params, state)
        params = optax.apply_updates(params, updates)
    batches = [{"x": x[:128], "y": y[:128]}, {"x": x[128:], "y": y[128:]}]
    return model, loss_fn, params, batches, {"x": x, "y": y}


# ----------------------------------------------------------------------------- curvature
def test_curvature_matches_dense_hessian(small_mlp):
    _, loss_fn, params, batches, full = small_mlp
    flat, unravel = ravel_pytree(params)
    assert flat.size <= 2000
    dense = jax.jit(jax.hessian(lambda f: loss_fn(unravel(f), full)[0] / len(full["y"])))(flat)
    exact = np.linalg.eigvalsh(np.asarray(dense, np.float64))
    matvec, dim = curvature.hessian_matvec(loss_fn, params, batches)
    top = curvature.top_eigenvalues(matvec, dim, 3, jax.random.key(1), num_steps=40)
    np.testing.assert_allclose(top, exact[::-1][:3], rtol=1e-2)
    trace = curvature.hutchpp(matvec, dim, 600, jax.random.key(2))
    assert abs(trace / exact.sum() - 1) < 1e-2, (trace, exact.sum())


def test_curvature_closed_form_on_a_quadratic():
    """L = 1/2 theta^T A theta has Hessian A: known eigenvalues, trace their sum."""
    rng = np.random.default_rng(0)
    eigenvalues = np.concatenate([[50.0, 20.0, 10.0], rng.uniform(-1, 1, 197)])
    q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    a = jnp.asarray(q * eigenvalues @ q.T, jnp.float32)

    def loss_fn(params, batch):
        return 0.5 * params["theta"] @ a @ params["theta"], jnp.float32(1)

    matvec, dim = curvature.hessian_matvec(loss_fn, {"theta": jnp.ones(200)}, [None])
    top = curvature.top_eigenvalues(matvec, dim, 3, jax.random.key(0), num_steps=30)
    np.testing.assert_allclose(top, [50, 20, 10], rtol=1e-4)
    values, weights = curvature.ritz(*curvature.lanczos(matvec, dim, 200, jax.random.key(0)))
    np.testing.assert_allclose(np.sort(values), np.sort(eigenvalues), atol=1e-3)  # m = P: exact
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)
    trace = curvature.hutchpp(matvec, dim, 300, jax.random.key(3))
    np.testing.assert_allclose(trace, eigenvalues.sum(), atol=0.02 * np.abs(eigenvalues).sum())
    eos = curvature.edge_of_stability(50.0, 0.01)
    assert eos["threshold_2_over_lr"] == 200.0 and eos["sharpness_over_threshold"] == 0.25


# ----------------------------------------------------------------------------- landscape
def test_linear_path_and_plane_on_a_quadratic():
    """L(theta) = mean_b ||theta - c_b||^2 is a parabola along any line and a paraboloid on
    any plane; batches of different counts are weighed per example."""
    centres = [jnp.array([1.0, 2.0, 3.0]), jnp.array([-1.0, 0.0, 1.0])]
    batches = [{"c": centres[0], "n": 1.0}, {"c": centres[1], "n": 3.0}]

    def loss_fn(params, batch):
        return batch["n"] * jnp.sum(jnp.square(params["w"] - batch["c"])), batch["n"]

    def exact(w):
        return (jnp.sum(jnp.square(w - centres[0])) + 3 * jnp.sum(jnp.square(w - centres[1]))) / 4

    t0, t1 = {"w": jnp.zeros(3)}, {"w": jnp.array([2.0, -1.0, 0.5])}
    alphas = np.linspace(-0.5, 1.5, 9)
    path = landscape.linear_path(loss_fn, t0, t1, alphas, batches, chunk=4)   # 9 points, chunks of 4
    np.testing.assert_allclose(path, [exact(a * t1["w"]) for a in alphas], rtol=1e-6)
    d1, d2 = {"w": jnp.array([1.0, 0, 0])}, {"w": jnp.array([0, 1.0, 1.0])}
    coords = np.array([[0.0, 0.0], [1.0, -2.0], [0.5, 3.0]])
    plane = landscape.plane_losses(loss_fn, t1, [d1, d2], coords, batches, chunk=2)
    np.testing.assert_allclose(plane, [exact(t1["w"] + a * d1["w"] + b * d2["w"]) for a, b in coords], rtol=1e-6)


def test_filter_normalized_direction():
    """Every filter (output unit) of the direction has the norm of theta's filter; biases 0."""
    model = build("cnn", num_outputs=3, channels=(4, 6), kernel_sizes=(3,), strides=(1,))
    params = model.init(jax.random.key(0), jnp.zeros((2, 16)))
    d = landscape.filter_normalized_direction(jax.random.key(1), params)
    kernel, dk = params["blocks"][1]["conv"]["kernel"], d["blocks"][1]["conv"]["kernel"]
    np.testing.assert_allclose(jnp.linalg.norm(dk.reshape(-1, 6), axis=0),
                               jnp.linalg.norm(kernel.reshape(-1, 6), axis=0), rtol=1e-5)
    assert not jnp.allclose(dk / kernel, (dk / kernel).ravel()[0])   # a direction, not a rescaling
    assert all(not jnp.any(leaf) for leaf in jax.tree.leaves(d) if leaf.ndim == 1)


def test_surface_grid_is_vmapped_and_centred(small_mlp):
    _, loss_fn, params, batches, _ = small_mlp
    c, losses = landscape.surface(loss_fn, params, jax.random.key(0), batches, extent=0.5, resolution=5, chunk=7)
    centre = sum(loss_fn(params, b)[0] for b in batches) / 256
    np.testing.assert_allclose(losses[2, 2], centre, rtol=1e-5)
    assert c.tolist() == [-0.5, -0.25, 0.0, 0.25, 0.5] and losses.shape == (5, 5)
    assert losses.min() < losses.max()


# ----------------------------------------------------------------------------- symmetry
def _graphs(seed=0):
    rng = np.random.default_rng(seed)

    def graph(n, e):
        return GraphsTuple(nodes=rng.normal(size=(n, 5)).astype(np.float32), edges=None, globals=None,
                           senders=rng.integers(0, n, e).astype(np.int32),
                           receivers=rng.integers(0, n, e).astype(np.int32),
                           n_node=np.array([n], np.int32), n_edge=np.array([e], np.int32))

    return pad_graphs(batch_graphs([graph(7, 15), graph(5, 9), graph(9, 20)]), 32, 64, 4)


@pytest.mark.parametrize("name, task_level", [("gcn", "node"), ("gat", "node"), ("gin", "graph"), ("mpnn", "graph")])
def test_gnn_is_permutation_equivariant(name, task_level):
    graph = _graphs()
    model = build(name, num_outputs=3, task_level=task_level)
    params = model.init(jax.random.key(0), graph)
    f = jax.jit(lambda g: model.apply(params, g))
    errors = symmetry.node_permutation_errors(f, graph, 4, node_level=task_level == "node")
    assert errors.max() < 1e-5, errors
    # the check can fail: node outputs left unpermuted, or (graph level) nodes moved across graphs
    perm = np.roll(np.arange(32), 3)
    wrong = symmetry.equivariance_error(f, graph, lambda g: symmetry.permute_nodes(g, perm))
    assert wrong > 1e-3


def test_permute_nodes_keeps_the_graph():
    graph = _graphs()
    perm = symmetry.block_permutation(np.random.default_rng(1), graph.n_node, 32)
    permuted = symmetry.permute_nodes(graph, perm)
    edges = {(a, b) for a, b in zip(graph.senders, graph.receivers)}
    assert {(perm[a], perm[b]) for a, b in zip(permuted.senders, permuted.receivers)} == edges
    np.testing.assert_array_equal(permuted.nodes, graph.nodes[perm])
    assert np.all(np.repeat(np.arange(4), graph.n_node)[perm] == np.repeat(np.arange(4), graph.n_node))


def test_circular_cnn_is_shift_invariant_and_zero_padding_is_not():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 40)), jnp.float32)
    hyper = dict(num_outputs=10, channels=(8, 8, 8), kernel_sizes=(5, 3, 3), strides=(2, 2, 1), readout="mean")
    circular = build("cnn", padding="circular", residual=True, norm="group", num_groups=2, **hyper)
    params = circular.init(jax.random.key(0), x)
    f = jax.jit(lambda v: circular.apply(params, v))
    assert symmetry.shift_errors(f, x, [4, 8, 12, 36]).max() < 1e-5   # multiples of the stride 4
    assert symmetry.shift_errors(f, x, [1, 2, 3]).min() > 1e-3         # sub-stride: not a symmetry
    zeros = build("cnn", padding=1, **hyper)
    g = jax.jit(lambda v: zeros.apply(params, v))
    assert symmetry.shift_errors(g, x, [4, 8]).min() > 1e-4            # the boundary breaks it


def test_circular_conv_layer_commutes_with_shifts():
    from zoo.models import layers as L
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 12, 10, 3)), jnp.float32)
    params = L.conv_init(jax.random.key(0), (3, 4), 3, 5)
    y = L.conv(params, x, padding="CIRCULAR")
    assert y.shape == (2, 12, 10, 5)
    np.testing.assert_allclose(L.conv(params, jnp.roll(x, (3, -2), (1, 2)), padding="CIRCULAR"),
                               jnp.roll(y, (3, -2), (1, 2)), atol=1e-5)
    # away from the wrap, circular and zero padding agree
    np.testing.assert_allclose(y[:, 1:-1, 1:-2], L.conv(params, x, padding="SAME")[:, 1:-1, 1:-2], atol=1e-5)


@pytest.mark.parametrize("positions, pooling, invariant", [
    ("none", "mean", True), ("none", "cls", True), ("learned", "mean", False), ("rotary", "mean", False)])
def test_transformer_token_permutation(positions, pooling, invariant):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 10, 4)), jnp.float32)
    model = build("transformer", num_outputs=10, size="tiny", positions=positions, pooling=pooling)
    params = model.init(jax.random.key(0), x)
    params = jax.tree.map(lambda a: a * 10 if a.ndim == 2 else a, params)   # out of the near-linear init
    errors = symmetry.permutation_errors(jax.jit(lambda v: model.apply(params, v)), x, 4)
    assert (errors.max() < 1e-5) if invariant else (errors.min() > 1e-3), errors


def test_exact_elements_follow_the_architecture():
    cfg = entry("cnn").config(num_outputs=10, strides=(2, 2, 1), padding="circular", readout="mean")
    assert symmetry.exact_elements("cnn", cfg, "shift", [4, 6, 8])[1].tolist() == [True, False, True]
    assert not symmetry.exact_elements("cnn", cfg.__class__(num_outputs=10), "shift", [4, 8])[1].any()
    rotary = entry("transformer").config(num_outputs=10, positions="rotary")
    assert not symmetry.exact_elements("transformer", rotary, "permutation", [0, 1])[1].any()


def test_mlp_has_no_shift_symmetry():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 40)), jnp.float32)
    model = build("mlp", num_outputs=10)
    params = model.init(jax.random.key(0), x)
    assert symmetry.shift_errors(lambda v: model.apply(params, v), x, [1, 4]).min() > 1e-2


# ----------------------------------------------------------------------------- calibration
def test_ece_of_a_binned_predictor_is_exact():
    """Bins of 400 examples at confidence c holding exactly 400 c^2 correct: ECE = mean |c - c^2|."""
    c = np.array([0.55, 0.65, 0.75, 0.85, 0.95])
    confidence = np.repeat(c, 400)
    correct = np.concatenate([np.arange(400) < round(400 * ci ** 2) for ci in c]).astype(float)
    bins = calibration.reliability(confidence, correct, num_bins=10)
    np.testing.assert_allclose(calibration.expected_calibration_error(bins), np.mean(c - c ** 2), rtol=1e-12)
    np.testing.assert_allclose(bins["accuracy"][5:], c ** 2, rtol=1e-12)
    assert bins["count"].sum() == 2000 and bins["count"][:5].sum() == 0


def test_ece_of_an_overconfident_predictor_matches_closed_form():
    """Confidence c ~ U(0.5, 1), correct with probability c^2: ECE = E[c - c^2] = 1/6 whatever
    the bins, since c - c^2 > 0 never changes sign. Two-class logits carry c."""
    rng = np.random.default_rng(0)
    n = 400_000
    c = rng.uniform(0.5, 1.0, n)
    labels = np.where(rng.uniform(size=n) < c ** 2, 0, 1)
    logits = np.stack([np.log(c), np.log1p(-c)], -1)
    confidence, correct = calibration.confidences(logits, labels)
    np.testing.assert_allclose(confidence, c, rtol=1e-5)
    ece = calibration.expected_calibration_error(calibration.reliability(confidence, correct, 15))
    assert abs(ece - 1 / 6) < 3e-3, ece      # sampling std ~7e-4


def test_temperature_scaling_recovers_the_temperature():
    """Labels drawn from softmax(z); a predictor reporting 3 z is fixed by T = 3."""
    key_z, key_y = jax.random.split(jax.random.key(0))
    z = 2 * jax.random.normal(key_z, (20_000, 10))
    labels = np.asarray(jax.random.categorical(key_y, z))
    logits = 3 * np.asarray(z)
    t = calibration.fit_temperature(logits, labels)
    assert abs(t - 3) < 0.1, t
    assert calibration.nll(logits, labels, t) < calibration.nll(logits, labels, 1.0)
    before = calibration.expected_calibration_error(calibration.reliability(*calibration.confidences(logits, labels)))
    after = calibration.expected_calibration_error(calibration.reliability(*calibration.confidences(logits / t, labels)))
    assert after < 0.02 < before


# ----------------------------------------------------------------------------- gradflow
def test_gradflow_mlp_last_layer_matches_backprop_by_hand():
    x, y = _linear_data(n=16)
    model = build("mlp", num_outputs=5, depth=3, width=8, activation="tanh")
    params = model.init(jax.random.key(0), x)
    loss_sum = lambda p: _classifier_loss(model)(p, {"x": x, "y": y})[0]  # noqa: E731
    points = gradflow.mlp_points(None, params, x)
    grads = jax.jit(lambda p: gradflow.activation_gradients(loss_sum, p, points))(params)
    h = x
    for block in params["blocks"]:
        z = h @ block["dense"]["kernel"] + block["dense"]["bias"]
        h = jnp.tanh(z)
    error = jax.nn.softmax(model.apply(params, x)) - jax.nn.one_hot(y, 5)
    delta = (error @ params["head"]["kernel"].T) * (1 - h ** 2)        # d L / d z_3
    np.testing.assert_allclose(grads["layer 3"], delta, rtol=1e-4, atol=1e-7)
    # the sum over examples is the ordinary bias gradient
    bias_grad = jax.grad(loss_sum)(params)["blocks"][0]["dense"]["bias"]
    np.testing.assert_allclose(grads["layer 1"].sum(0), bias_grad, rtol=1e-4, atol=1e-7)
    norms = gradflow.per_example_norms(grads, np.ones(len(y)))
    np.testing.assert_allclose(norms["layer 3"], jnp.linalg.norm(delta, axis=-1).mean(), rtol=1e-4)
    deep = build("mlp", num_outputs=5, depth=11, width=4)
    deep_params = deep.init(jax.random.key(0), x)
    deep_grads = gradflow.activation_gradients(lambda p: _classifier_loss(deep)(p, {"x": x, "y": y})[0],
                                               deep_params, gradflow.mlp_points(None, deep_params, x))
    assert list(deep_grads) == [f"layer {i}" for i in range(1, 12)]   # network order, not sorted


def test_gradflow_cnn_and_transformer_points_sum_to_bias_gradients():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 40)), jnp.float32)
    y = jnp.arange(4) % 3
    cnn_cfg = entry("cnn").config(num_outputs=3, channels=(4, 6), kernel_sizes=(3,), strides=(1,), pool="max")
    for model, points in [
            (build("cnn", cnn_cfg), lambda p: gradflow.cnn_points(cnn_cfg, p, x)),
            (build("transformer", num_outputs=3, size="tiny"), lambda p: gradflow.transformer_points(None, p, x))]:
        params = model.init(jax.random.key(0), x)
        loss_sum = lambda p, model=model: _classifier_loss(model)(p, {"x": x, "y": y})[0]  # noqa: E731
        pts = points(params)
        grads = jax.jit(lambda p, pts=pts, f=loss_sum: gradflow.activation_gradients(f, p, pts))(params)
        reference = jax.jit(jax.grad(loss_sum))(params)
        for label, path, shape in pts:
            assert grads[label].shape == shape
            expected = reference
            for k in path:
                expected = expected[k]
            np.testing.assert_allclose(grads[label].sum(tuple(range(len(shape) - 1))), expected, rtol=1e-4, atol=1e-6)


def test_gradflow_through_time_rnn_vanishes_lstm_gru_keep_it():
    """Noise whose label is the sign of x_0: the Elman RNN's gradient at x_0 decays as
    sigma_max(W_hh)^T (bounded per step), the gated cells' far less (remember gates open)."""
    t = 30
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, t, 1)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int32)
    ratios = {}
    for kind in ("rnn", "lstm", "gru"):
        model = build(kind, num_outputs=2, hidden_size=8, remember_bias=2.0)
        params = model.init(jax.random.key(0), x)
        loss_of_x = lambda v, model=model, params=params: _classifier_loss(model)(params, {"x": v, "y": y})[0]  # noqa: E731
        g = gradflow.input_gradient_norms(loss_of_x, x)
        ratios[kind] = float(g[0] / g[-1])
        if kind == "rnn":
            cell, head = params["rnn"][0]["fwd"], params["head"]
            p = jax.nn.softmax(model.apply(params, x), -1) - jax.nn.one_hot(y, 2)
            dl_dh = jnp.linalg.norm(p @ head["kernel"].T, axis=-1).mean()
            sigma = lambda m: jnp.linalg.norm(m, 2)  # noqa: E731  (largest singular value)
            bound = sigma(cell["W_ih"]) * dl_dh * sigma(cell["W_hh"]) ** jnp.arange(t - 1, -1, -1)
            assert bool(jnp.all(g <= bound * (1 + 1e-5)))
    assert ratios["rnn"] < 1e-3 * min(ratios["lstm"], ratios["gru"]), ratios


# ----------------------------------------------------------------------------- on a trained run
def test_probes_on_a_trained_run_agree_with_the_trainer(tmp_path):
    import argparse
    import json

    from zoo import config, probes, train
    from zoo import experiment as ex
    from zoo.commands import probe

    cfg = config.load(None, ["model.name=mlp", "model.width=32", "data.name=mnist1d", "train.batch_size=50",
                             "train.eval_batch_size=500", "train.steps=30", "train.log_every=10",
                             f"run.dir={tmp_path}", "run.name=t", "run.plots=false"])
    summary = train.fit(cfg)
    run = ex.load_run(tmp_path / "t")
    land = probes.run("landscape", run, examples=1000, line_points=5, resolution=3)
    # a = 1 on the line and the plane's centre are the trained point: the trainer's eval loss
    np.testing.assert_allclose([land["line_eval"][3], land["surface_eval"][1][1]], summary["eval_loss"], rtol=1e-5)
    assert land["line_train"][1] > land["line_train"][3]        # training lowered the loss
    assert probes.run("calibration", run)["before"]["accuracy"] == pytest.approx(summary["eval_accuracy"])
    curv = probes.run("curvature", run, examples=100, k=2, lanczos_steps=10, trace_matvecs=6, at_init=False)
    assert curv["trained"]["top"][0] >= curv["trained"]["top"][1] > 0
    assert list(probes.run("gradflow", run, examples=16)["trained"]) == ["layer 1", "layer 2"]
    args = argparse.Namespace(words=[str(tmp_path / "t"), "symmetry", "num=2"], step=None, params="last",
                              replica=None)
    assert probe.run(args) == 0
    numbers = json.loads((tmp_path / "t" / "probes" / "symmetry.json").read_text())
    assert numbers["group"] == "shift" and numbers["max_error_exact"] is None   # an MLP has no symmetry
    assert numbers["max_error_other"] > 1e-2
    for name in set(probes.PROBES) - {"conservation", "alignment"}:   # need a Hamiltonian system, a translation run
        assert (tmp_path / "t" / "probes" / f"{name}.png").stat().st_size > 0
    with pytest.raises(config.ConfigError, match="no option 'resolutions'"):
        probe.run(argparse.Namespace(words=[str(tmp_path / "t"), "landscape", "resolutions=3"], step=None,
                                     params="last", replica=None))


