"""Gradient flow through time: ||d loss / d x_t|| against t for an Elman RNN, an LSTM and a GRU
on the same task, at initialisation and after training (the vanishing-gradient picture).

    python -m zoo.figures.gradflow --out gradflow.png                   # MNIST-1D sequences, T = 40
    python -m zoo.figures.gradflow --task noise --length 200 --train-steps 0

The loss reads the last hidden state only (readout "last"), so d loss / d x_t measures how much
step t can still influence the loss T - 1 - t steps later. Theory (Bengio et al. 1994; Pascanu
et al. 2013): for the Elman RNN, d h_T / d h_t is a product of T - t Jacobians
diag(1 - h^2) W_hh^T, so its norm is at most sigma_max(W_hh)^(T-t) and decays geometrically
when sigma_max < 1. The LSTM's cell path has d c_T / d c_t = prod f_k (the "constant error
carousel", Hochreiter & Schmidhuber 1997) and the GRU's has the factor prod z_k: with the
remember gates open (f, z near 1) the gradient survives many more steps.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from zoo.models import build

KINDS = ("rnn", "lstm", "gru")


def input_gradient_norms(model, params, x, y) -> jax.Array:
    """Mean over the batch of ||d loss / d x_t||_2 for every t. x: [B, T, D] -> [T]."""
    def loss(x):
        logits = model.apply(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()

    g = jax.jit(jax.grad(loss))(x)
    return jnp.linalg.norm(g, axis=-1).mean(0)


def task_data(task: str, length: int, batch: int, seed: int = 0):
    """(x_train, y_train, x_probe, y_probe): MNIST-1D sequences, or Gaussian noise whose label
    is the sign of the first input (so only x_0 carries information)."""
    if task == "mnist1d":
        from zoo.data import mnist1d
        ds = mnist1d.load(mnist1d.MNIST1DConfig(format="sequence"))
        return ds.train["x"], ds.train["y"], ds.test["x"][:batch], ds.test["y"][:batch]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4000 + batch, length, 1)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int32)
    return x[:4000], y[:4000], x[4000:], y[4000:]


def train(model, params, x, y, *, steps: int, batch: int, learning_rate: float, seed: int = 0):
    """A few Adam steps on random minibatches (a plain loop: the trainer is not needed here)."""
    tx = optax.adam(learning_rate)

    @jax.jit
    def step(params, opt_state, xb, yb):
        loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(model.apply(p, xb), yb).mean()  # noqa: E731
        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = tx.init(params)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        rows = rng.integers(0, len(y), batch)
        params, opt_state = step(params, opt_state, x[rows], y[rows])
    return params


def curves(task: str, *, length: int, hidden: int, train_steps: int, batch: int = 100,
           learning_rate: float = 3e-3, remember_bias: float = 0.0, seed: int = 0) -> dict:
    """{kind: (norms at init [T], norms after training [T])} for the three cells."""
    x, y, x_probe, y_probe = task_data(task, length, batch, seed)
    out = {}
    for kind in KINDS:
        model = build(kind, num_outputs=int(y.max()) + 1, hidden_size=hidden, remember_bias=remember_bias)
        params = model.init(jax.random.key(seed), x_probe)
        before = input_gradient_norms(model, params, x_probe, y_probe)
        params = train(model, params, x, y, steps=train_steps, batch=batch, learning_rate=learning_rate)
        out[kind] = (np.asarray(before), np.asarray(input_gradient_norms(model, params, x_probe, y_probe)))
    return out


def plot(results: dict, path: str, title: str, train_steps: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, index, label in [(axes[0], 0, "at initialisation"), (axes[1], 1, f"after {train_steps} Adam steps")]:
        for kind, norms in results.items():
            ax.semilogy(np.arange(len(norms[index])), norms[index], label=kind.upper())
        ax.set_title(label)
        ax.set_xlabel("input step t (the loss reads the last step)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("||d loss / d x_t||")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m zoo.figures.gradflow", description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=["mnist1d", "noise"], default="mnist1d")
    p.add_argument("--length", type=int, default=100, help="sequence length for --task noise")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--train-steps", type=int, default=500)
    p.add_argument("--remember-bias", type=float, default=0.0, help="LSTM forget / GRU update gate bias")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="gradflow.png")
    args = p.parse_args(argv)
    results = curves(args.task, length=args.length, hidden=args.hidden, train_steps=args.train_steps,
                     remember_bias=args.remember_bias, seed=args.seed)
    plot(results, args.out, f"gradient flow on {args.task}, H={args.hidden}", args.train_steps)
    for kind, (before, after) in results.items():
        print(f"{kind:5s} ||g_0|| / ||g_T-1||: init {before[0] / before[-1]:.3g}, trained {after[0] / after[-1]:.3g}")
    print(f"wrote {Path(args.out).resolve()}")


if __name__ == "__main__":
    main()
