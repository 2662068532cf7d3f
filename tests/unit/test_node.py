"""Neural ODE family: the solver against closed forms (matrix exponential, harmonic oscillator)
and scipy, RK4's order, backsolve adjoint == direct backpropagation, forward-then-backward
returns the start, NFE == a count of calls, no recompilation across training steps, the spiral
dataset, and torchdiffeq with copied weights."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo import tasks
from zoo.data import ode as D
from zoo.models import build
from zoo.models import layers as L
from zoo.models import node as N
from zoo.tasks import regression

TIGHT = dict(rtol=1e-6, atol=1e-8)


def linear_field(M, t, y):
    return y @ M


def _solve(cfg_kwargs, field, params, y0, ts):
    return N.odeint(N.SolverConfig(**cfg_kwargs), field, params, y0, ts)


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("solver, kwargs, tol", [
    ("tsit5", TIGHT, 1e-5), ("dopri5", TIGHT, 1e-5), ("rk4", dict(dt0=0.01), 1e-5),
    ("euler", dict(dt0=0.001), 2e-3)])
def test_linear_ode_matches_matrix_exponential(solver, kwargs, tol):
    M = jnp.array([[-0.3, 1.0, 0.0], [-1.0, -0.2, 0.5], [0.1, 0.0, -0.4]])
    y0 = jnp.array([1.0, -0.5, 0.25])
    ts = jnp.linspace(0.0, 2.0, 5)
    ys, _ = _solve(dict(solver=solver, **kwargs), linear_field, M, y0, ts)
    expected = jnp.stack([y0 @ jax.scipy.linalg.expm(M * t) for t in ts])
    np.testing.assert_allclose(ys, expected, atol=tol)


def test_harmonic_oscillator_closed_form():
    omega = 2.0   # x'' = -omega^2 x, x(0) = 1, x'(0) = 0
    M = jnp.array([[0.0, -omega ** 2], [1.0, 0.0]])   # d[x, v]/dt = [x, v] @ M = [v, -omega^2 x]
    ts = jnp.linspace(0.0, 2 * np.pi, 9)
    ys, _ = _solve(dict(solver="tsit5", **TIGHT), linear_field, M, jnp.array([1.0, 0.0]), ts)
    np.testing.assert_allclose(ys[:, 0], jnp.cos(omega * ts), atol=1e-5)
    np.testing.assert_allclose(ys[:, 1], -omega * jnp.sin(omega * ts), atol=1e-5)


def test_matches_scipy_solve_ivp_on_the_spiral():
    t = np.linspace(0.0, 5.0, 50)
    expected = D.integrate(D.spiral_field, D.SPIRAL_Y0, t)     # scipy DOP853, float64
    A = jnp.asarray(D.SPIRAL_A, jnp.float32)
    ys, _ = _solve(dict(solver="dopri5", rtol=1e-7, atol=1e-9),
                   lambda A, t, y: (y ** 3) @ A, A, jnp.asarray(D.SPIRAL_Y0, jnp.float32), jnp.asarray(t))
    np.testing.assert_allclose(ys, expected, atol=2e-5)


def test_rk4_is_fourth_order():
    M, y0 = jnp.array([[0.0, -1.0], [1.0, 0.0]]), jnp.array([1.0, 0.0])
    exact = y0 @ jax.scipy.linalg.expm(M * 1.0)
    errors = [jnp.abs(_solve(dict(solver="rk4", dt0=dt), linear_field, M, y0,
                             jnp.array([0.0, 1.0]))[0][-1] - exact).max() for dt in (0.2, 0.1)]
    assert 12 < errors[0] / errors[1] < 20    # 2^4 = 16


def test_forward_then_backward_returns_the_start():
    A = jnp.asarray(D.SPIRAL_A, jnp.float32)
    field = lambda A, t, y: (y ** 3) @ A                  # noqa: E731
    y0 = jnp.array([2.0, 0.0])
    ys, _ = _solve(dict(solver="tsit5", **TIGHT), field, A, y0, jnp.linspace(0.0, 3.0, 4))
    back, _ = _solve(dict(solver="tsit5", **TIGHT), field, A, ys[-1], jnp.linspace(3.0, 0.0, 4))
    np.testing.assert_allclose(back[::-1], ys, atol=1e-4)


# ----------------------------------------------------------------------------- NFE
@pytest.mark.parametrize("solver, dt0", [("tsit5", None), ("dopri5", 0.05), ("rk4", 0.1), ("euler", 0.1)])
def test_nfe_counts_the_calls(solver, dt0):
    calls = []

    def field(M, t, y):
        jax.debug.callback(lambda: calls.append(1))
        return y @ M

    M = jnp.array([[0.0, -1.0], [1.0, -0.1]])
    ys, nfe = _solve(dict(solver=solver, dt0=dt0, **TIGHT), field, M, jnp.ones(2), jnp.linspace(0, 1, 3))
    jax.block_until_ready(ys)
    assert int(nfe) == len(calls) > 0


# ----------------------------------------------------------------------------- gradients
def _spiral_batch(batch_size=4):
    return D.load_spiral(D.SpiralConfig(num_points=200, t1=5.0, batch_time=8)).train_batch(0, 0, batch_size)


def _node_loss(cfg):
    model = build("node", cfg)

    def loss(params, batch):
        ys, stats = model.apply_with_stats(params, batch["x"])
        sums = regression(ys, batch)
        return sums["loss"] / sums["count"]
    return model, loss


def test_backsolve_adjoint_matches_backpropagation():
    f = N.mlp_field("tanh", 3, True)
    params = N.mlp_field_init(jax.random.key(0), 2, 8, 1, time_dependent=True, init_std=0.5)
    y0, ts = jnp.array([2.0, 0.0]), jnp.array([0.0, 0.5, 1.0])

    def loss(params, y0, adjoint):
        ys, _ = _solve(dict(solver="dopri5", rtol=1e-7, atol=1e-9, adjoint=adjoint), f, params, y0, ts)
        return jnp.sum(ys ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)   # not op by op: each solve's loops compile anyway
    direct = grad(params, y0, "recursive_checkpoint")
    adjoint = grad(params, y0, "backsolve")
    for g_direct, g_adjoint in zip(jax.tree.leaves(direct), jax.tree.leaves(adjoint)):
        np.testing.assert_allclose(g_adjoint, g_direct, rtol=1e-3, atol=1e-5)


def test_training_step_compiles_once():
    dataset = D.load_spiral(D.SpiralConfig(num_points=200, t1=5.0, batch_time=8))
    model, loss = _node_loss(N.NODEConfig(width=8, input_power=3, solver="tsit5"))
    opt = optax.adam(1e-2)
    traces = []

    @jax.jit
    def step(params, opt_state, batch):
        traces.append(1)               # runs only while tracing
        value, grads = jax.value_and_grad(loss)(params, batch)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, value

    params = model.init(jax.random.key(0), dataset.train_batch(0, 0, 4)["x"])
    opt_state = opt.init(params)
    for i in range(3):
        params, opt_state, value = step(params, opt_state, dataset.train_batch(0, i, 4))
    assert len(traces) == 1 and np.isfinite(value)


# ----------------------------------------------------------------------------- models
def test_node_apply_jit_matches_eager_and_starts_at_y0():
    batch = _spiral_batch()
    model = build("node", width=8, solver="rk4", dt0=0.05)
    params = model.init(jax.random.key(1), batch["x"])
    ys, stats = model.apply_with_stats(params, batch["x"])
    ys_jit, stats_jit = jax.jit(model.apply_with_stats)(params, batch["x"])
    assert ys.shape == batch["y"].shape
    np.testing.assert_allclose(ys, ys_jit, atol=1e-6)
    np.testing.assert_allclose(ys[:, 0], batch["x"]["y0"], atol=1e-6)
    assert float(stats["nfe"]) == float(stats_jit["nfe"]) > 0


def test_odenet_shapes_and_fixed_step_nfe():
    x = jax.random.normal(jax.random.key(0), (3, 40))
    model = build("odenet", num_outputs=10, channels=8, num_groups=2, solver="rk4", dt0=0.25)
    logits, stats = model.apply_with_stats(model.init(jax.random.key(1), x), x)
    assert logits.shape == (3, 10) and float(stats["nfe"]) == 16.0


def test_conv1d_matches_lax_convolution():
    params = L.conv_init(jax.random.key(0), (3,), 5, 4)
    params["bias"] = jax.random.normal(jax.random.key(1), (4,))
    x = jax.random.normal(jax.random.key(2), (2, 11, 5))
    np.testing.assert_allclose(N.conv1d(params, x), L.conv(params, x, padding="SAME"), atol=1e-5)


def test_fixed_step_solver_needs_dt0():
    with pytest.raises(ValueError, match="dt0"):
        N.SolverConfig(solver="rk4")


# ----------------------------------------------------------------------------- data
def test_spiral_batches():
    dataset = D.load_spiral(D.SpiralConfig())
    a, b = dataset.train_batch(3, 7, 20), dataset.train_batch(3, 7, 20)
    assert a["x"]["t"].shape == (20, 10) and a["y"].shape == (20, 10, 2)
    np.testing.assert_array_equal(a["y"], b["y"])                      # pure in (seed, step)
    np.testing.assert_array_equal(a["y"][:, 0], a["x"]["y0"])
    np.testing.assert_allclose(np.diff(a["x"]["t"], axis=1), 25 / 999, rtol=1e-4)
    (evaluation,) = dataset.eval_batches(4)
    assert evaluation["y"].shape == (4, 1000, 2) and evaluation["mask"].tolist() == [1, 0, 0, 0]
    np.testing.assert_allclose(evaluation["x"]["y0"][0], [2.0, 0.0])


# ----------------------------------------------------------------------------- torchdiffeq
@pytest.mark.crosscheck
def test_matches_torchdiffeq_with_copied_weights():
    torch = pytest.importorskip("torch")
    torchdiffeq = pytest.importorskip("torchdiffeq")
    batch = _spiral_batch()
    model = build("node", width=16, input_power=3, init_std=0.1, solver="dopri5", rtol=1e-7, atol=1e-9)
    params = model.init(jax.random.key(0), batch["x"])
    layers = params["field"]["layers"]
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    with torch.no_grad():
        for linear, p in zip((net[0], net[2]), layers):
            linear.weight.copy_(torch.tensor(np.asarray(p["kernel"]).T))
            linear.bias.copy_(torch.tensor(np.asarray(p["bias"])))
    ts = batch["x"]["t"][0] - batch["x"]["t"][0, 0]
    y0 = torch.tensor(np.asarray(batch["x"]["y0"]))
    expected = torchdiffeq.odeint(lambda t, y: net(y ** 3), y0, torch.tensor(np.asarray(ts)),
                                  method="dopri5", rtol=1e-7, atol=1e-9)
    x = {"y0": batch["x"]["y0"], "t": jnp.broadcast_to(ts, batch["x"]["t"].shape)}
    ys = model.apply(params, x)
    np.testing.assert_allclose(ys, expected.detach().numpy().transpose(1, 0, 2), atol=1e-5)


# ----------------------------------------------------------------------------- CNF
def test_cnf_trace_dynamics_match_the_change_of_variables():
    from zoo.models import cnf
    M = jnp.array([[0.3, -1.0], [0.5, -0.2]])
    x = jnp.array([[1.0, 2.0], [-0.5, 0.25]])
    state0 = (x, jnp.zeros(2))
    (zs, deltas), _ = _solve(dict(solver="tsit5", **TIGHT), cnf.trace_dynamics(linear_field), M, state0,
                             jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(zs[-1], x @ jax.scipy.linalg.expm(M), atol=1e-5)
    np.testing.assert_allclose(deltas[-1], jnp.trace(M) * jnp.ones(2), atol=1e-5)   # log det expm(M) = tr M


def test_cnf_density_integrates_to_one():
    from zoo.models import cnf
    model = cnf.build("cnf", cnf.CNFConfig(width=16, depth=2, rtol=1e-5, atol=1e-5))
    grid = jnp.linspace(-8.0, 8.0, 161)
    points = jnp.stack(jnp.meshgrid(grid, grid), -1).reshape(-1, 2)
    params = model.init(jax.random.key(3), points)
    params["field"]["layers"][-1]["kernel"] *= 5.0     # a field far from zero: a non-trivial flow
    log_p, stats = jax.jit(model.apply_with_stats)(params, points)
    assert abs(float(jnp.exp(log_p).sum() * (grid[1] - grid[0]) ** 2) - 1.0) < 0.01
    assert float(stats["nfe"]) > 0


def test_toy2d_batches_and_density_task():
    from zoo.data import toy2d
    dataset = toy2d.load(toy2d.Toy2DConfig(density="checkerboard", num_test=10))
    a, b = dataset.train_batch(1, 5, 64), dataset.train_batch(1, 5, 64)
    np.testing.assert_array_equal(a["x"], b["x"])
    assert a["x"].shape == (64, 2) and np.abs(a["x"]).max() <= 2.0
    batches = list(dataset.eval_batches(4))
    assert len(batches) == 3 and batches[-1]["mask"].tolist() == [1, 1, 0, 0]
    sums = tasks.density(jnp.array([-1.0, -3.0]), {"mask": jnp.array([1.0, 0.0])})
    assert float(sums["loss"]) == 1.0 and float(sums["count"]) == 1.0


def test_plots_write_pngs(tmp_path):
    from zoo.figures.ode import plot_density, plot_trajectories
    t = np.linspace(0, 1, 20)
    ys = np.stack([np.cos(t), np.sin(t)], -1)
    path = plot_trajectories(tmp_path / "a.png", t, ys, {"learned": ys + 0.01},
                             field=lambda y: y @ np.array([[0.0, -1.0], [1.0, 0.0]]))
    gaussian = lambda x: -0.5 * (x ** 2).sum(-1) - np.log(2 * np.pi)   # noqa: E731
    points = np.random.default_rng(0).standard_normal((100, 2))
    path2 = plot_density(tmp_path / "b.png", gaussian, points, points)
    assert path.stat().st_size > 1000 and path2.stat().st_size > 1000
