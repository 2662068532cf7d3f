"""Energy conservation of a learned vector field (Greydanus et al. 2019, sec. 4 and fig. 2).

Axis legend: M trajectories, T times, D phase-space coordinates.
From the clean initial states z_m(0) of the test trajectories, integrate the trained model's
field dz/dt = f_theta(z) (diffrax, Tsit5, adaptive) and the true one (scipy DOP853) over
`horizon` times the data's time span, then

    energy MSE = mean_{m, t} (H(z_hat_m(t)) - H(z_m(t)))^2          H: the system's true energy

(the paper's "energy MSE"). For an HNN the learned H_theta is also read along its own
trajectory: the flow of J grad H_theta keeps it constant, so its drift measures the integrator
alone. Needs a dataset that knows its energy (data.name=hamiltonian).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def rollout(field: Callable[[jax.Array], jax.Array], z0: np.ndarray, t: np.ndarray, *,
            rtol: float = 1e-6, atol: float = 1e-8) -> np.ndarray:
    """Trajectories [M, T, D] of dz/dt = field(z) (z [M, D], rows independent) from z0 at times t."""
    import diffrax

    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda _, z, __: field(z)), diffrax.Tsit5(), t0=float(t[0]), t1=float(t[-1]),
        dt0=float(t[1] - t[0]), y0=jnp.asarray(z0, jnp.float32), saveat=diffrax.SaveAt(ts=jnp.asarray(t, jnp.float32)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=100_000)
    return np.asarray(solution.ys).swapaxes(0, 1)


def energy_mse(energy: Callable[[np.ndarray], np.ndarray], predicted: np.ndarray, true: np.ndarray) -> float:
    """mean (H(predicted) - H(true))^2 over all trajectories and times, in float64."""
    return float(np.mean((energy(predicted.astype(np.float64)) - energy(true)) ** 2))


def run(run: Any, *, horizon: float = 1.0, trajectories: int = 25) -> dict:
    """Energy MSE of the run's learned field on the test trajectories; energy against time of
    the first one; writes run_dir/probes/conservation.{json,png}."""
    from zoo.data.hamiltonian import integrate
    from zoo.errors import ConfigError
    from zoo.models import hnn
    from zoo.probes import rundata

    exp = run.exp
    data = exp.dataset
    if not hasattr(data, "energy") or not getattr(data, "trajectories", None):
        raise ConfigError(f"conservation needs a dataset that knows its energy (data.name=hamiltonian); "
                          f"this run has {exp.cfg.data_name}")
    if horizon <= 0 or trajectories < 1:
        raise ConfigError(f"conservation needs horizon > 0 and trajectories >= 1 (got {horizon}, {trajectories})")
    z0 = data.trajectories["z"][:trajectories, 0]
    t = data.trajectories["t"] * horizon
    true = integrate(data.field, z0, t)
    predicted = rollout(jax.jit(lambda z: exp.model.apply(run.params, z)), z0, t)
    numbers = {"model": exp.cfg.model_name, "system": data.system, "horizon": float(t[-1]),
               "energy_mse": energy_mse(data.energy, predicted, true), "t": t,
               "energy_true": data.energy(true[0]), "energy_predicted": data.energy(predicted[0].astype(np.float64))}
    if isinstance(exp.cfg.model, hnn.HNNConfig) and not exp.cfg.model.baseline:
        learned = np.asarray(hnn.hamiltonian(run.params, jnp.asarray(predicted.reshape(-1, predicted.shape[-1])),
                                             exp.cfg.model)).reshape(predicted.shape[:2])
        numbers["learned_energy_drift"] = float(np.max(np.abs(learned - learned[:, :1])))
    return rundata.write(run.run_dir, "conservation", numbers, plot(numbers))


def plot(numbers: dict) -> Any:
    from zoo.probes import rundata

    fig, axes = rundata.figure(1, width=6)
    ax = axes[0]
    ax.plot(numbers["t"], numbers["energy_true"], "k-", label="true trajectory")
    ax.plot(numbers["t"], numbers["energy_predicted"], "C0--", label=f"{numbers['model']}'s trajectory")
    ax.set(xlabel="time", ylabel="true energy H(z(t))",
           title=f"{numbers['system']}: energy MSE {numbers['energy_mse']:.2e} (all test trajectories)")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
