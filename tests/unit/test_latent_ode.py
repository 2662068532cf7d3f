"""Irregular series (zoo.data.irregular), the "irregular" task, ODE-RNN / latent ODE
(zoo.models.latent_ode), the RNN-VAE and the GRU fed time gaps (zoo.models.recurrent): the
generator's splits, a gap solved in rescaled time equals the ODE over the gap (closed form), the
decoder solved both ways from its anchor (closed form), the encoder read backwards, no peeking at
unobserved values, and the ELBO's KL term."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import tasks
from zoo.data import irregular as D
from zoo.models import build
from zoo.models import latent_ode as M
from zoo.models import node as N

SMALL = dict(num_outputs=1, hidden_size=6, width=8)


def small(name, **options):
    return build(name, **({"num_outputs": 1, "hidden_size": 6} if name in ("gru_gaps", "rnn_vae") else SMALL),
                 **options)


def batch(n=4, points=12, seed=0):
    ds = D.load(D.IrregularConfig(num_train=n, num_test=n, num_points=points, seed=seed))
    return jax.tree.map(jnp.asarray, ds.train_batch(0, 0, n))


def test_the_generator_splits_every_point_once_and_hides_targets():
    ds = D.load(D.IrregularConfig(num_train=50, num_test=10, num_points=40))
    a = ds.train
    assert np.all(np.diff(a["t"], axis=1) >= 0) and np.all(a["t"][:, 0] == 0) and a["t"].max() <= 5
    np.testing.assert_array_equal(a["observed"] + a["interp"] + a["extrap"], 1)   # each point in one set
    assert np.all(a["t"][a["extrap"] > 0] >= 2.5) and np.all(a["t"][a["observed"] > 0] < 2.5)
    assert np.all(a["observed"][:, 0] == 1)
    b = ds.train_batch(0, 0, 50)
    np.testing.assert_array_equal(b["x"]["values"][b["x"]["observed"] == 0], 0)   # never a target
    # values: sin(2π f t) + z0, f in [0.4, 0.8]: one period's range is 2 (noise 0.01)
    span = a["values"][..., 0].max(1) - a["values"][..., 0].min(1)
    assert np.all(span < 2.02) and np.median(span) > 1.9


def test_the_task_means_over_each_set_and_adds_the_scaled_kl():
    b = {"y": {"values": jnp.zeros((2, 4, 1)), "interp": jnp.array([[1, 1, 0, 0], [0, 1, 0, 0.]]),
               "extrap": jnp.array([[0, 0, 1, 1], [0, 0, 0, 1.]])}, "mask": jnp.array([1.0, 0.0]),
         "x": {"observed": jnp.zeros((2, 4))}}
    pred = jnp.arange(8.0).reshape(2, 4, 1)
    sums = tasks.irregular({"y": pred, "kl": jnp.array([4.0, 100.0])}, b)
    assert float(sums["interp_mse"]) == (0 + 1) / 2 and float(sums["extrap_mse"]) == (4 + 9) / 2
    assert float(sums["loss"]) == (0 + 1 + 4 + 9) / 4 + 4.0 / 4 and float(sums["count"]) == 1


def test_one_gap_in_rescaled_time_is_the_ode_over_the_gap():
    """dh/ds = Δt h A over s in [0, 1] is h(Δt) = h0 expm(Δt A), per series its own Δt (and back)."""
    A = jnp.array([[0.0, 2.0], [-2.0, -0.3]])
    cfg = M.ODERNNConfig(solver="dopri5", rtol=1e-7, atol=1e-9, dt0=None)
    h0 = jnp.array([[1.0, 0.0], [0.5, -1.0], [0.2, 0.3]])
    dt = jnp.array([0.3, 1.7, -0.8])
    h, nfe = M.evolve(cfg, M.gap_field(lambda A, t, y: y @ A), A, h0, dt)
    expected = jnp.stack([h0[i] @ jax.scipy.linalg.expm(dt[i] * A) for i in range(3)])
    np.testing.assert_allclose(h, expected, atol=1e-5)
    assert int(nfe) > 0


@pytest.mark.parametrize("name, options", [("ode_rnn", {}), ("latent_ode", {}), ("gru_gaps", {}), ("rnn_vae", {}),
                                           ("latent_ode", {"z0_at": "last_observed"}),
                                           ("rnn_vae", {"z0_at": "last_observed"})])
def test_unobserved_values_change_nothing(name, options):
    x = batch()["x"]
    hidden = {**x, "values": jnp.where(x["observed"][..., None] > 0, x["values"], 123.0)}
    model = small(name, **options)
    params = model.init(jax.random.PRNGKey(0), x)
    apply = jax.jit(model.apply)   # one compile for both inputs (op by op, each solve compiles anew)
    a, b = jax.tree.map(np.asarray, (apply(params, x), apply(params, hidden)))
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_a_point_is_predicted_before_it_is_read():
    """ode_rnn and gru_gaps: changing the value at point i moves predictions after i, none up to i."""
    x = batch()["x"]
    i = 5
    x = {**x, "observed": x["observed"].at[:, i].set(1.0)}
    moved = {**x, "values": x["values"].at[:, i].add(1.0)}
    for name in ("ode_rnn", "gru_gaps"):
        model = small(name)
        params = model.init(jax.random.PRNGKey(0), x)
        apply = jax.jit(model.apply)
        a, b = apply(params, x), apply(params, moved)
        np.testing.assert_array_equal(a[:, :i + 1], b[:, :i + 1])
        assert float(jnp.abs(a[:, i + 1:] - b[:, i + 1:]).max()) > 0


def test_the_decoder_solves_both_ways_from_its_anchor():
    """decode from z(anchor) = z0 with dz/dt = z A is z0 expm((t_i - anchor) A) at every t_i,
    before the anchor (solved backwards) and after it; z0_at="first" anchors at t_0."""
    A = jnp.array([[0.0, 2.0], [-2.0, -0.3]])
    cfg = M.ODERNNConfig(solver="dopri5", rtol=1e-7, atol=1e-9, dt0=None)
    step = lambda z, dt: M.evolve(cfg, M.gap_field(lambda A, t, y: y @ A), A, z, dt)   # noqa: E731
    t = jnp.array([[0.0, 0.4, 1.1, 1.5, 2.6], [0.0, 0.2, 0.3, 2.0, 2.2]])
    z0, anchor = jnp.array([[1.0, 0.0], [0.5, -1.0]]), jnp.array([1.1, 2.0])
    zs, _ = jax.jit(M.decode, static_argnums=0, static_argnames="both_ways")(step, z0, t, anchor, both_ways=True)
    expected = [[z0[b] @ jax.scipy.linalg.expm((t[b, i] - anchor[b]) * A) for i in range(5)] for b in range(2)]
    np.testing.assert_allclose(zs, np.array(expected), atol=1e-5)
    observed = jnp.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 0.]])
    np.testing.assert_array_equal(M.anchor_time(M.LatentODEConfig(z0_at="last_observed"), t, observed), anchor)
    np.testing.assert_array_equal(M.anchor_time(M.LatentODEConfig(), t, observed), t[:, 0])


@pytest.mark.parametrize("name", ["latent_ode", "rnn_vae"])
def test_z0_at_the_last_observed_time_is_read_from_the_points_up_to_it(name):
    """With z0_at="last_observed" the encoder reads forward and stops at t_L: moving the times
    after t_L moves the predictions there, none up to t_L (z0 is the same)."""
    x = batch()["x"]
    last = int(jnp.max(jnp.where(x["observed"] > 0, jnp.arange(x["t"].shape[1]), 0)))
    later = {**x, "t": x["t"].at[:, last + 1:].add(0.5)}
    model = small(name, z0_at="last_observed")
    params = model.init(jax.random.PRNGKey(0), x)
    apply = jax.jit(model.apply)
    a, b = apply(params, x)["y"], apply(params, later)["y"]
    np.testing.assert_allclose(a[:, :last + 1], b[:, :last + 1], atol=1e-6)
    assert float(jnp.abs(a[:, last + 1:] - b[:, last + 1:]).max()) > 1e-4


def test_the_latent_encoder_reads_backwards_to_t0():
    """The reversed ODE-RNN ends at the first point: with no field (zero weights) and every point
    observed it is a GRU over the points last to first, and its states come back in time order."""
    x = batch(points=6)["x"]
    x = {**x, "observed": jnp.ones_like(x["observed"])}
    params = M._encoder_init(jax.random.PRNGKey(0), M.ODERNNConfig(**SMALL), 1)
    params["field"] = jax.tree.map(jnp.zeros_like, params["field"])
    cfg = M.ODERNNConfig(**SMALL)
    before, h, _ = M.ode_rnn(cfg, params, x["t"], x["values"], x["observed"], reverse=True)
    from zoo.models.recurrent import make_cell
    gru, g = make_cell("gru"), jnp.zeros((4, 6))
    for i in reversed(range(6)):
        np.testing.assert_allclose(before[:, i], g, atol=1e-6)
        g, _ = gru(params["cell"], g, x["values"][:, i])
    np.testing.assert_allclose(h, g, atol=1e-6)


@pytest.fixture(scope="module")
def latent():
    """A latent ODE, its inputs and params, its deterministic output and the encoder's last state
    (each compiled once, for both parametrisations of the KL test)."""
    x = batch()["x"]
    model = build("latent_ode", **SMALL, latent_dim=3, obs_std=0.1)
    params = model.init(jax.random.PRNGKey(0), x)
    encode = jax.jit(lambda p, x: M.ode_rnn(M.LatentODEConfig(**SMALL, latent_dim=3), p, x["t"], x["values"],
                                            x["observed"], reverse=True)[1])
    return x, model, params, jax.jit(model.apply)(params, x), encode(params["encoder"], x)


@pytest.mark.parametrize("train", [False, True])
def test_latent_ode_kl_is_the_gaussian_kl_times_two_sigma_squared(latent, train):
    x, model, params, deterministic, h = latent
    apply = jax.jit(model.apply_with_stats, static_argnames="train")
    out, stats = apply(params, x, key=jax.random.PRNGKey(2), train=train)
    mu, log_sigma = np.split(np.asarray(h @ params["encoder"]["to_z0"]["kernel"] + params["encoder"]["to_z0"]["bias"]),
                             2, -1)
    kl = 0.5 * np.sum(mu ** 2 + np.exp(2 * log_sigma) - 1 - 2 * log_sigma, -1)
    np.testing.assert_allclose(out["kl"], 2 * 0.1 ** 2 * kl, rtol=1e-4)
    assert out["y"].shape == x["values"].shape and float(stats["kl"]) == pytest.approx(kl.mean(), rel=1e-4)
    assert np.array_equal(out["y"], deterministic["y"]) != train   # z0 sampled only when training


def test_node_solver_settings_reach_the_gaps():
    """The family's solver config drives each gap: euler with dt0 = 0.25 takes 4 steps per gap."""
    x = batch(points=5)["x"]
    model = build("ode_rnn", **SMALL, solver="euler", dt0=0.25)
    _, stats = model.apply_with_stats(model.init(jax.random.PRNGKey(0), x), x)
    assert float(stats["nfe"]) == 5 * 4 * N.EVALS_PER_STEP["euler"]
