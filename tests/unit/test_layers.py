"""Shared layers against flax.linen with copied weights, and closed-form checks."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.models import layers as L

KEY = jax.random.PRNGKey(0)


def rand(shape, seed=1):
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


def test_dense_matches_flax():
    x = rand((4, 7))
    params = L.dense_init(KEY, 7, 5)
    ref = nn.Dense(5).apply({"params": params}, x)
    np.testing.assert_allclose(L.dense(params, x), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape, window, strides, padding", [
    ((2, 40, 3), (5,), 2, 1),
    ((2, 40, 3), (3,), 1, "SAME"),
    ((2, 8, 8, 3), (3, 3), 1, "SAME"),
    ((2, 9, 7, 3), (3, 3), 2, "VALID"),
])
def test_conv_matches_flax(shape, window, strides, padding):
    x = rand(shape)
    params = L.conv_init(KEY, window, shape[-1], 6)
    flax_padding = [(padding, padding)] * len(window) if isinstance(padding, int) else padding
    ref = nn.Conv(6, window, strides=strides, padding=flax_padding).apply({"params": params}, x)
    np.testing.assert_allclose(L.conv(params, x, strides=strides, padding=padding), ref, rtol=1e-5, atol=1e-5)


def test_layernorm_matches_flax():
    x = rand((3, 5, 16)) * 3 + 1
    params = {"scale": rand((16,), 2), "bias": rand((16,), 3)}
    ref = nn.LayerNorm(epsilon=1e-6).apply({"params": params}, x)
    np.testing.assert_allclose(L.layernorm(params, x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape, groups", [((2, 10, 8), 4), ((2, 5, 5, 12), 3), ((2, 6, 4), 1)])
def test_groupnorm_matches_flax(shape, groups):
    x = rand(shape) * 2 - 1
    c = shape[-1]
    params = {"scale": rand((c,), 2), "bias": rand((c,), 3)}
    ref = nn.GroupNorm(num_groups=groups, epsilon=1e-6).apply({"params": params}, x)
    np.testing.assert_allclose(L.groupnorm(params, x, num_groups=groups), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_and_its_running_statistics_match_flax(train):
    x = rand((4, 9, 6)) * 3 + 2
    params = {"scale": rand((6,), 2), "bias": rand((6,), 3)}
    stats = {"mean": rand((6,), 4), "var": jnp.exp(rand((6,), 5))}
    ref, updated = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5).apply(
        {"params": params, "batch_stats": stats}, x, mutable=["batch_stats"])
    y, new = L.batchnorm(params, stats, x, train=train, momentum=0.9)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    if train:   # each channel over batch and length; the running averages move towards them
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), new, updated["batch_stats"])
        assert not np.allclose(new["mean"], stats["mean"])
    else:       # evaluation reads the running statistics and returns no new ones
        assert new is None


def test_rmsnorm_matches_flax():
    x = rand((3, 16))
    params = {"scale": rand((16,), 2)}
    ref = nn.RMSNorm(epsilon=1e-6).apply({"params": params}, x)
    np.testing.assert_allclose(L.rmsnorm(params, x), ref, rtol=1e-5, atol=1e-5)


def test_pooling_by_hand():
    x = jnp.arange(8.0).reshape(1, 8, 1)
    np.testing.assert_array_equal(L.pool(x, "max", 2)[0, :, 0], [1, 3, 5, 7])
    np.testing.assert_array_equal(L.pool(x, "avg", 4)[0, :, 0], [1.5, 5.5])


def test_dropout_rate_is_drop_probability():
    x = jnp.ones((100_000,))
    y = L.dropout(KEY, x, 0.3, train=True)
    assert abs(float((y == 0).mean()) - 0.3) < 0.01          # 30% dropped
    assert abs(float(y.mean()) - 1.0) < 0.02                 # expectation preserved
    assert L.dropout(None, x, 0.3, train=False) is x
    with pytest.raises(ValueError, match="needs a PRNG key"):
        L.dropout(None, x, 0.3, train=True)
