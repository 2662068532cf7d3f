"""The CNN's pre-activation layers (He et al. 2016b) against closed forms: with every later
convolution zeroed, the residual network carries its first layer's output unchanged to the
readout, and the plain one carries nothing; one layer is norm -> ReLU -> conv written out."""
import chex
import jax
import jax.numpy as jnp

import zoo.models.cnn as C
import zoo.models.layers as L
from zoo.experiment import count_params
from zoo.models import build
from zoo.models.core import STATE, trainable

HYPER = dict(num_outputs=3, channels=(8, 8, 8), kernel_sizes=(3,), strides=(1,), padding="same", norm="group",
             num_groups=2, readout="mean", preactivation=True)


def _zero_later_convs(params):
    blocks = [params["blocks"][0]] + [{**b, "conv": jax.tree.map(jnp.zeros_like, b["conv"])}
                                      for b in params["blocks"][1:]]
    return {**params, "blocks": blocks}


def test_zeroed_residual_branches_leave_the_stream_to_the_readout():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 20))
    for residual in (True, False):
        cfg = C.CNNConfig(**HYPER, residual=residual)
        params = _zero_later_convs(build("cnn", cfg).init(jax.random.PRNGKey(1), x))
        first = params["blocks"][0]
        h0 = L.conv(first["conv"], x[..., None], padding="SAME")
        if residual:
            h0 = h0 + L.conv(first["skip"], x[..., None], padding="VALID")
        stream = h0 if residual else jnp.zeros_like(h0)
        expected = jax.nn.relu(L.groupnorm(params["final_norm"], stream, num_groups=2)).mean(axis=1)
        chex.assert_trees_all_close(C.features(cfg, params, x), expected, atol=1e-5)


def test_a_later_layer_is_norm_then_relu_then_conv():
    cfg = C.CNNConfig(**HYPER)
    h = jax.random.normal(jax.random.PRNGKey(2), (2, 20, 8))
    block = build("cnn", cfg).init(jax.random.PRNGKey(3), h[..., 0])["blocks"][1]
    block = {**block, "norm": {"scale": jnp.linspace(0.5, 2, 8), "bias": jnp.linspace(-1, 1, 8)}}
    expected = L.conv(block["conv"], jax.nn.relu(L.groupnorm(block["norm"], h, num_groups=2)), padding="SAME")
    chex.assert_trees_all_close(C.layer(cfg, block, h, 1, None, False, C.Norms(cfg, None, False)), expected, atol=1e-5)


RESNET_1D = dict(num_outputs=3, channels=(4, 4, 8, 8), kernel_sizes=(5, 3), strides=(1,), padding="same",
                 norm="group", num_groups=1, residual=True, block_depth=2, readout="mean")


def test_blocks_of_several_layers_project_only_where_channels_change():
    """Wang et al. 2017's ResNet shape at a small size: a 1x1 shortcut (with its norm) into a
    block whose channels differ from its input, the identity elsewhere; none inside a block."""
    params = build("cnn", C.CNNConfig(**RESNET_1D)).init(jax.random.PRNGKey(0), jnp.zeros((2, 16, 1)))
    assert ["skip" in b for b in params["blocks"]] == [False, True, False, True]
    assert params["blocks"][1]["skip"]["kernel"].shape == (1, 1, 4) and "skip_norm" in params["blocks"][1]
    assert params["blocks"][3]["skip"]["kernel"].shape == (1, 4, 8)


def test_a_block_sums_before_its_last_activation():
    """h' = relu(norm(conv2(relu(norm(conv1 h)))) + h): with conv2 zeroed and the norm's bias
    zero, the block is relu(h), the identity on a non-negative stream."""
    cfg = C.CNNConfig(**{**RESNET_1D, "channels": (4, 4), "kernel_sizes": (3,)})
    h = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 4))
    layers = build("cnn", cfg).init(jax.random.PRNGKey(2), h)["blocks"]
    layers = [layers[0], {**layers[1], "conv": jax.tree.map(jnp.zeros_like, layers[1]["conv"])}]

    def block(layers):
        return C.block_layer(cfg, layers, h, 0, [None, None], False, C.Norms(cfg, None, False))
    chex.assert_trees_all_close(block(layers), jax.nn.relu(h), atol=1e-6)
    layers[1]["conv"]["bias"] = jnp.ones(4)  # a constant branch normalises to zero: still relu(h)
    chex.assert_trees_all_close(block(layers), jax.nn.relu(h), atol=1e-5)


def test_block_depth_must_divide_the_layers():
    import pytest

    from zoo.errors import ConfigError
    with pytest.raises(ConfigError, match="block_depth=3 must divide the 4 layers"):
        build("cnn", C.CNNConfig(**{**RESNET_1D, "block_depth": 3}))


def test_batchnorm_keeps_its_running_statistics_as_the_models_state():
    """norm=batch: params[STATE] holds a (mean, var) beside every norm, the shortcut's too;
    a training apply returns their new values in the same tree and takes no gradient from
    them; evaluation reads them; they are not counted as parameters."""
    cfg = C.CNNConfig(**{**RESNET_1D, "norm": "batch", "norm_momentum": 0.9})
    model = build("cnn", cfg)
    x = jax.random.normal(jax.random.PRNGKey(3), (6, 16)) * 2 + 1
    params = model.init(jax.random.PRNGKey(4), x)
    running = params[STATE]
    assert sorted(running["blocks"]) == ["0", "1", "2", "3"] and sorted(running["blocks"]["1"]) == ["norm", "skip_norm"]
    y, stats = model.apply_with_stats(params, x, train=True)
    assert jax.tree.structure(stats[STATE]) == jax.tree.structure(running)
    first = L.conv(params["blocks"][0]["conv"], x[..., None], padding="SAME")   # layer 0 before its norm
    chex.assert_trees_all_close(stats[STATE]["blocks"]["0"]["norm"]["mean"], 0.1 * first.mean((0, 1)), atol=1e-6)
    grads = jax.grad(lambda p: model.apply(p, x, train=True).sum())(params)
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads[STATE]))
    assert model.apply_with_stats(params, x)[1] == {}           # evaluation leaves the state alone
    moved = {**params, STATE: stats[STATE]}
    assert not jnp.allclose(model.apply(moved, x), model.apply(params, x))
    assert count_params(params) == count_params(trainable(params)) < sum(a.size for a in jax.tree.leaves(params))
