"""Memory levers change memory, not the function: model.remat (Transformer, GPT, stacked
recurrent models) and model.scan_layers (Transformer, GPT) give the gradients of the plain
model; scanned and unscanned params convert into each other, through a real checkpoint too."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import checkpoint
from zoo.models import build
from zoo.models import transformer as T

TOKENS = jax.random.randint(jax.random.PRNGKey(0), (2, 8), 0, 40)
GPT = dict(size="tiny", vocab_size=40, num_layers=2, dropout_rate=0.1)


def grads(name, x, **hyper):
    model = build(name, **hyper)
    params = model.init(jax.random.PRNGKey(1), x)

    def loss(p):   # dropout on: remat and scan must replay the same masks
        return jnp.mean(jnp.square(model.apply(p, x, key=jax.random.PRNGKey(2), train=True)))
    return T.unstack_layers(jax.jit(jax.grad(loss))(params))


def assert_trees_close(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)


def test_gpt_gradients_equal_with_each_lever():
    plain = grads("gpt", TOKENS, **GPT)
    for lever in (dict(remat="block"), dict(remat="dots"), dict(scan_layers=True, remat="dots")):
        assert_trees_close(grads("gpt", TOKENS, **GPT, **lever), plain)


def test_encoder_gradients_equal_scanned_and_rematerialised():
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 10, 5))
    hyper = dict(size="tiny", num_outputs=4, num_layers=2, dropout_rate=0.1)
    assert_trees_close(grads("transformer", x, **hyper, scan_layers=True, remat="dots"),
                       grads("transformer", x, **hyper))


@pytest.mark.parametrize("name,impl,mode", [("lstm_lm", "scan", "dots"), ("gru_lm", "fused", "block")])
def test_recurrent_lm_gradients_equal_with_remat(name, impl, mode):
    hyper = dict(vocab_size=40, embed_dim=8, hidden_size=16, num_layers=2, dropout_rate=0.1, impl=impl)
    assert_trees_close(grads(name, TOKENS, **hyper, remat=mode), grads(name, TOKENS, **hyper))


def test_recurrent_classifier_gradients_equal_with_remat():
    x = jax.random.normal(jax.random.PRNGKey(3), (3, 9, 4))
    hyper = dict(num_outputs=5, hidden_size=8, num_layers=2, bidirectional=True)
    assert_trees_close(grads("gru", x, **hyper, remat="block"), grads("gru", x, **hyper))


def test_scanned_model_traces_one_block_whatever_the_depth():
    """Compile time stays flat in depth: the scanned program holds one block's matmuls."""
    def dots(num_layers, scan):
        model = build("gpt", **{**GPT, "num_layers": num_layers, "scan_layers": scan})
        params = model.init(jax.random.PRNGKey(1), TOKENS)
        return str(jax.make_jaxpr(lambda p: model.apply(p, TOKENS))(params)).count("dot_general")

    assert dots(2, True) == dots(6, True)
    assert dots(6, False) > dots(2, False)


def state_of(params):
    import optax
    return {"params": params, "opt_state": optax.adam(1e-3).init(params), "step": jnp.ones((), jnp.int32)}


@pytest.mark.parametrize("saved_scanned", [False, True])
def test_checkpoints_load_across_layouts(tmp_path, saved_scanned):
    """A train state saved in one layout restores into a model of the other: restore in the
    saved layout, then convert (params and Adam's moments alike)."""
    model = build("gpt", **GPT, scan_layers=saved_scanned)
    saved = state_of(model.init(jax.random.PRNGKey(1), TOKENS))
    ckpt = checkpoint.Checkpointer(tmp_path, keep=1)
    ckpt.save(1, saved, {"step": 1})
    ckpt.manager.wait_until_finished()

    target = build("gpt", **GPT, scan_layers=not saved_scanned)
    target_state = jax.eval_shape(lambda: state_of(target.init(jax.random.PRNGKey(1), TOKENS)))
    as_saved = (T.stack_layers if saved_scanned else T.unstack_layers)(target_state)
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    restored, _ = ckpt.restore(jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                                            as_saved))
    ckpt.close()
    loaded = (T.unstack_layers if saved_scanned else T.stack_layers)(restored)
    assert jax.tree.structure(loaded) == jax.tree.structure(target_state)
    assert_trees_close(T.unstack_layers(loaded), T.unstack_layers(saved))
    np.testing.assert_allclose(target.apply(loaded["params"], TOKENS), model.apply(saved["params"], TOKENS),
                               rtol=1e-5, atol=1e-6)
