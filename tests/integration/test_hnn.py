"""Hamiltonian neural networks and the Hamiltonian systems: the generated fields are the
symplectic gradients of their energies, an HNN's field conserves its learned H exactly, and,
trained briefly on the mass-spring, it conserves the true energy along integrated test
trajectories far better than the baseline MLP (the paper's claim, at a small scale)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo.data import hamiltonian
from zoo.models import build, hnn
from zoo.probes import conservation


@pytest.mark.parametrize("name", sorted(hamiltonian.SYSTEMS))
def test_each_system_field_is_the_symplectic_gradient_of_its_energy(name):
    system = hamiltonian.SYSTEMS[name]
    z = hamiltonian.initial_states(name, np.random.default_rng(0), 4)
    eps, d = 1e-6, system.dim // 2
    grad = np.stack([(system.energy(z + eps * e) - system.energy(z - eps * e)) / (2 * eps)
                     for e in np.eye(system.dim)], axis=-1)
    np.testing.assert_allclose(system.field(z), np.concatenate([grad[:, d:], -grad[:, :d]], -1), atol=1e-6)


def test_dataset_split_and_determinism():
    a = hamiltonian.load(hamiltonian.HamiltonianConfig(system="pendulum", seed=3))
    b = hamiltonian.load(hamiltonian.HamiltonianConfig(system="pendulum", seed=3))
    np.testing.assert_array_equal(a.train["x"], b.train["x"])
    assert a.train["x"].shape == (25 * 45, 2) and a.test["y"].shape == (25 * 45, 2)
    assert a.trajectories["z"].shape == (25, 45, 2)
    energy = a.energy(a.trajectories["z"])
    # the reference solve conserves H
    np.testing.assert_allclose(energy, np.broadcast_to(energy[:, :1], energy.shape), rtol=1e-7)


def test_hnn_field_is_orthogonal_to_the_gradient_of_its_energy():
    cfg = hnn.HNNConfig(width=32)
    model = build("hnn", cfg)
    z = jax.random.normal(jax.random.PRNGKey(1), (16, 4))
    params = model.init(jax.random.PRNGKey(0), z)
    grad = jax.grad(lambda v: jnp.sum(hnn.hamiltonian(params, v, cfg)))(z)
    dH_dt = jnp.sum(grad * model.apply(params, z), axis=-1)               # grad H . J grad H
    assert float(jnp.abs(dH_dt).max()) < 1e-6 * float(jnp.abs(grad).max()) ** 2
    assert model.apply(params, z).shape == z.shape


def fit_field(data, baseline, steps=200):
    model = build("hnn", width=32, baseline=baseline)
    x, y = jnp.asarray(data.train["x"]), jnp.asarray(data.train["y"])
    params = model.init(jax.random.PRNGKey(0), x)
    tx = optax.adam(1e-2)

    @jax.jit
    def step(p, s):
        g = jax.grad(lambda p: jnp.mean((model.apply(p, x) - y) ** 2))(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    state = tx.init(params)
    for _ in range(steps):
        params, state = step(params, state)
    return jax.jit(lambda z: model.apply(params, z))


def test_a_trained_hnn_conserves_energy_better_than_the_baseline():
    data = hamiltonian.load(hamiltonian.HamiltonianConfig(system="mass_spring"))
    z0, t = data.trajectories["z"][:8, 0], data.trajectories["t"] * 5      # 5x the training span
    true = hamiltonian.integrate(data.field, z0, t)
    errors = {b: conservation.energy_mse(data.energy, conservation.rollout(fit_field(data, b), z0, t), true)
              for b in (False, True)}
    assert errors[False] < 0.1 * errors[True], errors
