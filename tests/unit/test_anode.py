"""Augmented Neural ODEs (zoo.models.node's augment_dim) and their toy datasets: a linear field in
one extra dimension rotates x into -x (closed form), which no 1-D flow can do; shapes of the
flow mode and its readouts; the g1d and concentric-spheres generators and their one-line errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.data import anode as D
from zoo.errors import ConfigError
from zoo.models import build

EXACT = dict(solver="dopri5", rtol=1e-7, atol=1e-9, width=4, depth=0)   # depth 0: f(h) = W h + b


def linear_field_params(W: np.ndarray) -> dict:
    """A depth-0 `node` field f(h) = h W (zoo's dense: h @ kernel), zero bias."""
    return {"field": {"layers": [{"kernel": jnp.asarray(W, jnp.float32), "bias": jnp.zeros(len(W))}]}}


def test_one_extra_dimension_rotates_x_into_minus_x():
    """dh/dt = h [[0, π], [-π, 0]] from (x, 0) is a rotation by π at t = 1: (-x, 0)."""
    model = build("node", augment_dim=1, **EXACT)
    x = jnp.linspace(-1.0, 1.0, 7)[:, None]
    params = linear_field_params(np.pi * np.array([[0.0, 1.0], [-1.0, 0.0]]))
    assert jax.tree.map(jnp.shape, model.init(jax.random.PRNGKey(0), x)) == jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(model.apply(params, x), -x, atol=1e-5)


@pytest.mark.parametrize("w", [-3.0, -0.5, 0.5, 2.0])
def test_a_one_dimensional_flow_keeps_every_sign(w):
    """Without augmentation the same model in 1-D gives h(1) = e^w x: order kept, no crossing."""
    model = build("node", **EXACT)
    x = jnp.linspace(-1.0, 1.0, 7)[:, None]
    y = model.apply(linear_field_params(np.array([[w]])), x)
    np.testing.assert_allclose(y, np.exp(w) * x, rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(y[:, 0]) > 0)


def test_flow_mode_readouts_and_trajectory_mode_shapes():
    x = jnp.ones((5, 2))
    key = jax.random.PRNGKey(1)
    linear = build("node", augment_dim=3, num_outputs=1, width=8)
    params = linear.init(key, x)
    assert params["head"]["kernel"].shape == (5, 1) and params["field"]["layers"][0]["kernel"].shape == (5, 8)
    y, stats = linear.apply_with_stats(params, x)
    assert y.shape == (5, 1) and stats["nfe"] > 0
    projected = build("node", augment_dim=3, width=8)
    assert projected.apply(projected.init(key, x), x).shape == (5, 2)
    traj = {"y0": jnp.arange(4.0).reshape(2, 2), "t": jnp.tile(jnp.linspace(0, 1, 3), (2, 1))}
    ys = projected.apply(projected.init(key, traj), traj)
    assert ys.shape == (2, 3, 2)
    np.testing.assert_allclose(ys[:, 0], traj["y0"])   # y(t0) = y0, the augmented zeros dropped


def test_g1d_targets_are_minus_x():
    ds = D.load_g1d(D.G1DConfig(num_train=50, num_test=20))
    assert ds.train["x"].shape == (50, 1) and ds.test["x"].shape == (20, 1)
    np.testing.assert_array_equal(ds.train["y"], -ds.train["x"])
    assert np.abs(ds.train["x"]).max() <= 1 and ds.model_defaults == {}


def test_concentric_spheres_radii_labels_and_split():
    cfg = D.SpheresConfig(dim=3, num_inner=100, num_outer=200, num_test=90)
    ds = D.load_spheres(cfg)
    for split, n in (("train", 300), ("test", 90)):
        x, y = getattr(ds, split)["x"], getattr(ds, split)["y"][:, 0]
        r = np.linalg.norm(x, axis=1)
        assert x.shape == (n, 3) and (y == -1).sum() == n // 3
        assert r[y == -1].max() <= 0.5 and r[y == 1].min() >= 1.0 and r[y == 1].max() <= 1.5
    assert ds.model_defaults == {"num_outputs": 1}


def test_spheres_radii_out_of_order_is_one_line():
    with pytest.raises(ConfigError, match=r"data.radii=\[1.0, 0.5, 1.5\] must be increasing"):
        D.load_spheres(D.SpheresConfig(radii=(1.0, 0.5, 1.5)))
