"""Deep Sets and the digit-sum sets: invariance to the order of a set's elements and to its
padding, a linear rho summing per-element scores exactly, the masked mean, the dataset's sums,
split and determinism, the rounded-sum accuracy, and the symmetry probe's set group."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import tasks
from zoo.data import digit_sets
from zoo.models import build
from zoo.probes import symmetry

KEY = jax.random.PRNGKey(0)


def random_sets(key, b=4, t=6, f=5):
    x = jax.random.normal(key, (b, t, f))
    return {"x": x, "lengths": jnp.array([t, 1, 3, t - 1][:b], jnp.int32)}


@pytest.mark.parametrize("hyper", [{"width": 16, "rho_depth": 1}, {"width": 8, "pool": "mean"}])
def test_invariant_to_the_order_of_each_sets_elements_and_blind_to_padding(hyper):
    model = build("deepsets", num_outputs=3, **hyper)
    x = random_sets(KEY)
    params = model.init(KEY, x)
    y = model.apply(params, x)
    perm = symmetry.set_permutation(np.random.default_rng(0), np.asarray(x["lengths"]), 6)
    np.testing.assert_allclose(model.apply(params, symmetry.permute_sets(x, perm)), y, atol=1e-5)
    assert not np.array_equal(symmetry.permute_sets(x, perm)["x"], x["x"])
    garbage = jnp.where(jnp.arange(6)[None, :, None] < x["lengths"][:, None, None], x["x"], 1e3)
    np.testing.assert_allclose(model.apply(params, {**x, "x": garbage}), y, atol=1e-5)
    wider = {**x, "x": jnp.pad(x["x"], ((0, 0), (0, 4), (0, 0)), constant_values=7.0)}
    np.testing.assert_allclose(model.apply(params, wider), y, atol=1e-5)


def test_a_linear_rho_adds_up_per_element_scores():
    """rho_depth=0: f(X u Y) - b = (f(X) - b) + (f(Y) - b) for disjoint X, Y."""
    model = build("deepsets", num_outputs=1, width=16, rho_depth=0)
    x = jax.random.normal(KEY, (2, 5, 7))
    params = model.init(KEY, x)
    b = params["head"]["bias"]
    whole = model.apply(params, x)
    parts = model.apply(params, x[:, :2]) + model.apply(params, x[:, 2:]) - b
    np.testing.assert_allclose(whole, parts, rtol=1e-5, atol=1e-5)
    assert not np.allclose(model.apply(params, x[:, :2]), whole, atol=1e-3)


def test_mean_pooling_ignores_duplicating_the_set_and_sum_pooling_does_not():
    x = jax.random.normal(KEY, (3, 4, 5))
    for pool, same in (("mean", True), ("sum", False)):
        model = build("deepsets", num_outputs=2, width=8, pool=pool)
        params = model.init(KEY, x)
        twice = model.apply(params, jnp.concatenate([x, x], axis=1))
        assert np.allclose(twice, model.apply(params, x), atol=1e-5) == same


def test_digit_sets_sums_split_sizes_and_seed():
    cfg = digit_sets.DigitSetsConfig(num_train=300, num_test=20, max_size=4, test_size=7)
    data = digit_sets.load(cfg)
    batch = data.train_batch(0, 0, 100)
    lengths = batch["x"]["lengths"]
    assert batch["x"]["x"].shape == (100, 4, 64) and lengths.min() >= 1 and lengths.max() <= 4
    assert set(np.unique(lengths)) == {1, 2, 3, 4}
    assert not batch["x"]["x"][np.arange(4)[None, :] >= lengths[:, None]].any()     # zeros past the size
    test = next(data.eval_batches(20))
    assert test["x"]["x"].shape == (20, 7, 64) and (test["x"]["lengths"] == 7).all()
    # each sum is the sum of its images' digits, read back from the pixels
    images, labels = data.images["test"]
    flat = images.reshape(len(images), -1)
    digit = {flat[i].tobytes(): labels[i] for i in range(len(labels))}
    assert test["y"][:, 0].tolist() == [sum(digit[e.tobytes()] for e in s) for s in test["x"]["x"]]
    # test sets are drawn from held-out images only
    train_images = {a.tobytes() for a in data.images["train"][0].reshape(-1, 64)}
    assert not any(e.tobytes() in train_images for e in test["x"]["x"].reshape(-1, 64))
    again = digit_sets.load(cfg)
    np.testing.assert_array_equal(again.train_batch(0, 0, 100)["y"], batch["y"])
    other = digit_sets.load(digit_sets.DigitSetsConfig(num_train=300, num_test=20, max_size=4, seed=1))
    assert not np.array_equal(other.train_batch(0, 0, 100)["y"], batch["y"])
    assert data.sets(12, 5)["x"][np.arange(5)]["x"].shape == (5, 12, 64)


def test_digit_elements_are_one_hot_and_sum_to_the_label():
    data = digit_sets.load(digit_sets.DigitSetsConfig(num_train=50, num_test=4, elements="digit"))
    batch = data.train_batch(0, 0, 10)
    assert batch["x"]["x"].shape == (10, 10, 10) and set(np.unique(batch["x"]["x"])) == {0.0, 1.0}
    np.testing.assert_array_equal(batch["x"]["x"].sum(1) @ np.arange(10), batch["y"][:, 0])


def test_integer_regression_counts_rounded_outputs():
    batch = {"y": jnp.array([[3.0], [10.0], [0.0]]), "mask": jnp.array([1.0, 1.0, 0.0])}
    sums = tasks.integer_regression(jnp.array([[3.4], [10.6], [0.0]]), batch)
    assert float(sums["correct"]) == 1.0 and float(sums["count"]) == 2.0
    np.testing.assert_allclose(float(sums["loss"]), 0.4 ** 2 + 0.6 ** 2, rtol=1e-5)
    assert tasks.summarize("integer_regression", sums, "eval")["eval_accuracy"] == 0.5


def test_symmetry_probe_set_group_tells_deep_sets_from_a_gru():
    x = random_sets(KEY)
    errors = {}
    for name, hyper in (("deepsets", {"width": 16}), ("gru", {"hidden_size": 16})):
        model = build(name, num_outputs=1, **hyper)
        params = model.init(KEY, x)
        errors[name] = symmetry.set_permutation_errors(functools.partial(model.apply, params), x, num=4).max()
    assert errors["deepsets"] < 1e-5 < 1e-2 < errors["gru"]
