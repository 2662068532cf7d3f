"""ViT and MLP-Mixer against closed forms: the patch embedding is a strided convolution, ViT is
the encoder classifier on patches, the mixing MLPs commute with the permutations the paper says
they do, a zero head starts at log K; and both train from the bundled digits and a PNG folder,
export, and compile for given devices."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT

import zoo.models.layers as L
import zoo.models.mlp as M
from zoo import config, targets
from zoo.commands import compile as C
from zoo.commands.cli import alias
from zoo.models import build
from zoo.models.transformer import unstack_layers

TINY_VIT = dict(num_outputs=10, num_layers=2, num_heads=2, d_model=16, patch_size=4)
TINY_MIXER = dict(num_outputs=10, num_blocks=2, hidden_size=8, tokens_mlp_dim=4, channels_mlp_dim=16,
                  patch_size=4)
QUICK = ["train.steps=3", "train.log_every=1", "train.eval_batches=1", "train.eval_batch_size=40",
         "train.checkpoint_every=0", "run.plots=false"]


def images(seed=0, shape=(3, 8, 12, 2)):
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


def test_patch_embedding_is_a_convolution_with_kernel_equal_to_stride():
    x = images()
    params = L.patch_embed_init(jax.random.PRNGKey(1), 4, 2, 5)
    params["bias"] = jnp.arange(5.0)
    as_conv = L.conv(params, x, strides=4, padding="VALID")                     # [3, 2, 3, 5]
    chex.assert_trees_all_close(L.patch_embed(params, x), as_conv.reshape(3, 6, 5), atol=1e-5)


def test_patches_are_read_row_major_and_sizes_must_divide():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    patches = L.patchify(x, 2)
    np.testing.assert_array_equal(patches[0, 1], [2, 3, 6, 7])                  # top row, second patch
    np.testing.assert_array_equal(patches[0, 2], [8, 9, 12, 13])
    with pytest.raises(config.ConfigError, match="do not split into 3x3 patches"):
        L.patchify(x, 3)


def test_vit_is_the_encoder_classifier_on_flattened_patches():
    """The same trunk params in the "transformer" model, fed the patches as a sequence, give
    the same logits: ViT reuses the encoder rather than copying it."""
    x = images(shape=(3, 8, 8, 1))
    vit = build("vit", **TINY_VIT, zero_head=False)
    params = vit.init(jax.random.PRNGKey(0), x)
    encoder = build("transformer", **{k: v for k, v in TINY_VIT.items() if k != "patch_size"})
    kernel = params["embed"]["kernel"]
    as_encoder = {**params, "embed": {"kernel": kernel.reshape(-1, kernel.shape[-1]), "bias": params["embed"]["bias"]}}
    chex.assert_trees_all_close(vit.apply(params, x), encoder.apply(as_encoder, L.patchify(x, 4)), atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_vit_without_positions_ignores_the_order_of_the_patches(pooling):
    x = images(shape=(2, 8, 8, 1))
    swapped = x.at[:, :4, :4].set(x[:, 4:, 4:]).at[:, 4:, 4:].set(x[:, :4, :4])  # patches 0 and 3
    for positions, invariant in (("none", True), ("learned", False)):
        model = build("vit", **TINY_VIT, zero_head=False, pooling=pooling, positions=positions)
        params = model.init(jax.random.PRNGKey(0), x)
        close = np.allclose(model.apply(params, x), model.apply(params, swapped), atol=1e-5)
        assert close == invariant, positions


def _mixer_block(seed=0, patches=6, d=8):
    params = M.mixer_block_init(jax.random.PRNGKey(seed), M.MixerConfig(hidden_size=d, tokens_mlp_dim=4,
                                                                         channels_mlp_dim=16), patches)
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(seed + 1), 4)
    for name, (ks, kb) in (("token_norm", (k1, k2)), ("channel_norm", (k3, k4))):  # norms not the identity
        params[name] = {"scale": 1 + jax.random.normal(ks, (d,)), "bias": jax.random.normal(kb, (d,))}
    return params


def test_token_mixing_commutes_with_permuting_channels_and_not_patches():
    params, x = _mixer_block(), images(shape=(2, 6, 8))
    perm = np.random.default_rng(0).permutation(8)
    permuted = {**params, "token_norm": jax.tree.map(lambda a: a[perm], params["token_norm"])}
    chex.assert_trees_all_close(M.token_mixing(permuted, x[..., perm]), M.token_mixing(params, x)[..., perm],
                                atol=1e-5)
    patches = np.array([1, 0, 2, 3, 4, 5])
    assert not np.allclose(M.token_mixing(params, x[:, patches]), M.token_mixing(params, x)[:, patches], atol=1e-3)


def test_channel_mixing_commutes_with_permuting_patches_and_not_channels():
    params, x = _mixer_block(), images(shape=(2, 6, 8))
    perm = np.random.default_rng(1).permutation(6)
    chex.assert_trees_all_close(M.channel_mixing(params, x[:, perm]), M.channel_mixing(params, x)[:, perm], atol=1e-5)
    channels = np.array([1, 0, 2, 3, 4, 5, 6, 7])
    assert not np.allclose(M.channel_mixing(params, x[..., channels]), M.channel_mixing(params, x)[..., channels],
                           atol=1e-3)


def test_token_mixing_is_the_written_out_sum():
    """U[b, s, i] = X[b, s, i] + sum_j W2[j, s] GELU(sum_t W1[t, j] LN(X)[b, t, i] + b1[j]) + b2[s]."""
    params, x = _mixer_block(patches=6), images(shape=(2, 6, 8))
    ln = L.layernorm(params["token_norm"], x)
    up, down = params["token_mixing"]["up"], params["token_mixing"]["down"]
    hidden = jax.nn.gelu(jnp.einsum("bti,tj->bji", ln, up["kernel"]) + up["bias"][None, :, None])
    expected = x + jnp.einsum("bji,js->bsi", hidden, down["kernel"]) + down["bias"][None, :, None]
    chex.assert_trees_all_close(M.token_mixing(params, x), expected, atol=1e-5)


@pytest.mark.parametrize("name, hyper", [("vit", TINY_VIT), ("mixer", TINY_MIXER)])
def test_a_zero_head_starts_at_log_k_and_trains_the_head_first(name, hyper):
    x, y = images(shape=(4, 8, 8, 1)), jnp.array([0, 1, 2, 3])
    model = build(name, **hyper)
    params = model.init(jax.random.PRNGKey(0), x)
    np.testing.assert_array_equal(model.apply(params, x), 0.0)

    def loss(p):
        logits = model.apply(p, x)
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1).mean()

    np.testing.assert_allclose(loss(params), np.log(10), rtol=1e-6)
    grads = jax.grad(loss)(params)
    assert float(jnp.abs(grads["head"]["kernel"]).max()) > 0
    trunk = {k: v for k, v in grads.items() if k != "head"}
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(trunk)) == 0.0


def test_scan_layers_vit_matches_the_list_layout():
    x = images(shape=(2, 8, 8, 1))
    stacked = build("vit", **TINY_VIT, zero_head=False, scan_layers=True)
    params = stacked.init(jax.random.PRNGKey(0), x)
    listed = build("vit", **TINY_VIT, zero_head=False)
    chex.assert_trees_all_close(stacked.apply(params, x), listed.apply(unstack_layers(params), x), atol=1e-5)


@pytest.mark.parametrize("name", ["vit", "mixer"])
def test_steps_compile_for_given_devices(name):
    cfg = config.load(config.config_path(f"digits_{name}"), ["train.batch_size=8", "train.eval_batch_size=8"])
    target = targets.Target("cpu", "cpu", "cpu", "1", tuple(jax.devices()), 2**34)
    step, evaluate = C.compile_steps(cfg, target)
    assert step.flops > evaluate.flops > 0


def test_cls_attention_is_uniform_over_identical_patches_and_sums_below_one():
    """Identical patches without positions give identical keys: the CLS query weighs every patch
    alike in every block, and the patches' share (CLS's own weight left out) is below 1."""
    from zoo.models import vit
    cfg = vit.ViTConfig(**TINY_VIT, zero_head=False, positions="none")
    x = jnp.tile(images(shape=(2, 4, 4, 1)), (1, 2, 2, 1))                        # four equal 4x4 patches
    params = build("vit", cfg).init(jax.random.PRNGKey(0), x)
    maps = vit.cls_attention(cfg, params, x)                                       # [B, L, N]
    assert maps.shape == (2, 2, 4)
    chex.assert_trees_all_close(maps, jnp.broadcast_to(maps[..., :1], maps.shape), atol=1e-6)
    assert float(maps.sum(-1).max()) < 1.0
    varied = vit.cls_attention(cfg, params, images(shape=(2, 8, 8, 1)))
    assert not np.allclose(varied, varied[..., :1], atol=1e-4)


def test_a_vit_run_draws_its_cls_attention(tmp_path):
    quick = [q for q in QUICK if q != "run.plots=false"]
    assert alias("train", [str(ROOT / "configs" / "digits_vit.yaml"), "model.num_layers=2", f"run.dir={tmp_path}",
                           "run.name=v", *quick]) == 0
    assert (tmp_path / "v" / "cls_attention.png").stat().st_size > 0
