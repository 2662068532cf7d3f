"""Transformer family: attention against flax.linen and PyTorch, fused vs reference paths,
grouped-query and rotary closed forms, causality, KV-cache decoding, generation."""
from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo.models as M
from zoo.models import attention as A
from zoo.models import transformer as T

SHAKESPEARE = Path(__file__).resolve().parents[2] / "zoo" / "data" / "files" / "tinyshakespeare.txt"  # shipped
TOL = dict(rtol=1e-5, atol=1e-5)
# Jitted entry points: one compilation per shape instead of one per primitive (fast tests).
attend = jax.jit(A.attend, static_argnames=("is_causal", "implementation", "dropout_rate", "train"))
mha = jax.jit(A.multi_head_attention, static_argnames=("num_heads", "causal", "implementation"))
decode = jax.jit(T.decode, static_argnums=0)


def keys(n, seed=0):
    return jax.random.split(jax.random.key(seed), n)


def qkv(n_heads=4, n_kv=4, b=2, t=5, s=None, dh=8, seed=0):
    kq, kk, kv = keys(3, seed)
    s = s or t
    return (jax.random.normal(kq, (b, t, n_heads, dh)), jax.random.normal(kk, (b, s, n_kv, dh)),
            jax.random.normal(kv, (b, s, n_kv, dh)))


def small_gpt(**kw):
    kw = {"vocab_size": 11, "num_layers": 2, "num_heads": 4, "d_model": 32, **kw}
    cfg = T.GPTConfig(**kw)
    tokens = jax.random.randint(jax.random.key(3), (2, 9), 0, cfg.vocab_size)
    model = M.build("gpt", cfg)
    return cfg, M.Model.of(model.init, jax.jit(model.apply, static_argnames="train")), tokens


# ----------------------------------------------------------------------------- attention
@pytest.mark.crosscheck
@pytest.mark.parametrize("implementation", ["auto", "fused", "explicit"])
def test_attention_matches_flax_with_copied_weights(implementation):
    flax_nn = pytest.importorskip("flax.linen")
    b, t, d, n = 2, 6, 16, 4
    x = jax.random.normal(jax.random.key(0), (b, t, d))
    key_mask = jnp.array([[1] * t, [1] * 4 + [0] * 2], bool)
    ours = A.attention_init(jax.random.key(1), d, n)
    ours = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), ours)
    heads = lambda w: w.reshape(d, n, d // n)
    flax_params = {"query": {"kernel": heads(ours["query"]["kernel"]), "bias": ours["query"]["bias"].reshape(n, -1)},
                   "key": {"kernel": heads(ours["key"]["kernel"]), "bias": jnp.zeros((n, d // n))},
                   "value": {"kernel": heads(ours["value"]["kernel"]), "bias": ours["value"]["bias"].reshape(n, -1)},
                   "out": {"kernel": ours["out"]["kernel"].reshape(n, d // n, d), "bias": ours["out"]["bias"]}}
    layer = flax_nn.MultiHeadDotProductAttention(num_heads=n, qkv_features=d, out_features=d)
    for causal in (False, True):
        mask = A.combine_masks(A.padding_mask(key_mask), A.causal_mask(t) if causal else None)
        expected = jax.jit(layer.apply)({"params": flax_params}, x, mask=mask)
        got, _ = mha(ours, x, num_heads=n, causal=causal, key_mask=key_mask,
                                        implementation=implementation)
        np.testing.assert_allclose(got, expected, **TOL)


@pytest.mark.parametrize("n_kv", [4, 2, 1])
def test_fused_path_equals_explicit_path(n_kv):
    q, k, v = qkv(n_kv=n_kv)
    pad = A.padding_mask(jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool))
    for mask, causal in [(None, False), (None, True), (pad, False), (pad, True)]:
        fused = attend(q, k, v, mask, is_causal=causal)
        reference = attend(q, k, v, mask, is_causal=causal, implementation="explicit")
        np.testing.assert_allclose(fused, reference, **TOL)


def test_explicit_attention_by_hand():
    """One head, one query: softmax(q.k / sqrt(d)) v written out."""
    q, k, v = qkv(n_heads=1, n_kv=1, b=1, t=1, s=3, dh=2)
    logits = np.array([float(q[0, 0, 0] @ k[0, j, 0]) for j in range(3)]) / math.sqrt(2)
    w = np.exp(logits - logits.max())
    expected = (w / w.sum()) @ np.asarray(v[0, :, 0])
    np.testing.assert_allclose(A.explicit_attention(q, k, v)[0, 0, 0], expected, **TOL)


def test_grouped_query_equals_multi_head_with_shared_kv():
    q, k, v = qkv(n_heads=6, n_kv=2)
    repeat = lambda a: jnp.repeat(a, 3, axis=2)
    np.testing.assert_allclose(attend(q, k, v, is_causal=True),
                               attend(q, repeat(k), repeat(v), is_causal=True), **TOL)


@pytest.mark.crosscheck
def test_attention_matches_torch_sdpa():
    torch = pytest.importorskip("torch")
    q, k, v = qkv()
    to_torch = lambda a: torch.tensor(np.asarray(a)).transpose(1, 2)   # [B, N, T, Dh]
    expected = torch.nn.functional.scaled_dot_product_attention(*map(to_torch, (q, k, v)), is_causal=True)
    np.testing.assert_allclose(attend(q, k, v, is_causal=True), expected.transpose(1, 2).numpy(), **TOL)


def test_attention_dropout_only_in_training():
    q, k, v = qkv()
    dk = jax.random.key(5)
    plain = attend(q, k, v)
    np.testing.assert_array_equal(attend(q, k, v, dropout_key=dk, dropout_rate=0.5), plain)
    dropped = attend(q, k, v, dropout_key=dk, dropout_rate=0.5, train=True)
    assert not np.allclose(dropped, plain)
    np.testing.assert_array_equal(dropped, attend(q, k, v, dropout_key=dk, dropout_rate=0.5, train=True))


def test_rotary_scores_depend_on_relative_position_only():
    q, k, _ = qkv(n_heads=1, n_kv=1, b=1, t=1, dh=8)
    score = lambda p, s: float(jnp.sum(A.rotary(q, jnp.array([p])) * A.rotary(k, jnp.array([s]))))
    assert score(3, 1) == pytest.approx(score(10, 8), rel=1e-4)
    assert score(3, 1) != pytest.approx(score(3, 2), rel=1e-4)
    np.testing.assert_allclose(jnp.linalg.norm(A.rotary(q, jnp.array([7]))), jnp.linalg.norm(q), rtol=1e-5)


# ----------------------------------------------------------------------------- GPT
POSITION_VARIANTS = [dict(), dict(positions="rotary", norm="rms", mlp="swiglu", bias=False),
                     dict(num_kv_heads=2, tie_embeddings=False)]


@pytest.mark.parametrize("kw", POSITION_VARIANTS)
def test_cached_decoding_matches_full_forward_at_every_position(kw):
    cfg, model, tokens = small_gpt(**kw)
    params = model.init(jax.random.key(0), tokens)
    full = model.apply(params, tokens)
    caches = T.init_caches(cfg, tokens.shape[0], tokens.shape[1])
    prefix, caches = decode(cfg, params, tokens[:, :3], caches, 0)     # a prompt, then one at a time
    steps = [prefix]
    for i in range(3, tokens.shape[1]):
        logits, caches = decode(cfg, params, tokens[:, i:i + 1], caches, i)
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kw", POSITION_VARIANTS)
def test_future_tokens_never_change_past_logits(kw):
    cfg, model, tokens = small_gpt(**kw)
    params = model.init(jax.random.key(0), tokens)
    full = model.apply(params, tokens)
    for t in range(tokens.shape[1]):
        changed = tokens.at[:, t:].set((tokens[:, t:] + 1) % cfg.vocab_size)
        logits = model.apply(params, changed)
        np.testing.assert_allclose(logits[:, :t], full[:, :t], **TOL)
        assert not np.allclose(logits[:, t], full[:, t])


def naive_greedy(model, params, prompt, steps, window):
    """Argmax of a full forward pass over the last `window` tokens, one token at a time.
    The context is right-padded to `window` (causality: padding never changes the logit read)."""
    tokens = np.asarray(prompt)
    for _ in range(steps):
        context = tokens[:, -window:]
        padded = np.pad(context, ((0, 0), (0, window - context.shape[1])))
        logits = model.apply(params, jnp.asarray(padded))[:, context.shape[1] - 1]
        tokens = np.concatenate([tokens, np.argmax(logits, -1)[:, None]], axis=1)
    return tokens


@pytest.mark.parametrize("prompt_len, steps", [(3, 12), (10, 2)])
def test_greedy_generation_matches_recomputing_the_full_forward(prompt_len, steps):
    """Cached steps inside the 9-token window, then windowed steps past it; or a prompt
    longer than the window."""
    cfg, model, tokens = small_gpt()
    params = model.init(jax.random.key(0), tokens)
    prompt = jax.random.randint(jax.random.key(4), (2, prompt_len), 0, cfg.vocab_size)
    got = T.generate(cfg, params, prompt, steps=steps, key=jax.random.key(0), temperature=0.0)
    np.testing.assert_array_equal(got, naive_greedy(model, params, prompt, steps, tokens.shape[1]))


def test_sampling_is_seeded_and_top_k_one_is_greedy():
    cfg, model, tokens = small_gpt(positions="rotary")
    params = model.init(jax.random.key(0), tokens)
    prompt = tokens[:, :2]
    run = lambda seed, **kw: T.generate(cfg, params, prompt, steps=6, key=jax.random.key(seed), **kw)
    np.testing.assert_array_equal(run(1), run(1))
    assert run(1).shape == (2, 8) and run(1).dtype == jnp.int32
    np.testing.assert_array_equal(run(1)[:, :2], prompt)
    np.testing.assert_array_equal(run(2, top_k=1), run(3, temperature=0.0))


def test_nano_gpt_has_nanogpt_parameter_count():
    """nanoGPT's CPU recipe reports 0.80M parameters (position table excluded, fused-qkv bias
    counted); ours has no key bias (4 layers x 128)."""
    cfg = T.GPTConfig(vocab_size=65, size="nano")
    params = M.build("gpt", cfg).init(jax.random.key(0), jnp.zeros((1, 64), jnp.int32))
    count = sum(p.size for p in jax.tree.leaves(params))
    assert count - 64 * 128 == 801_152 == 801_664 - 4 * 128


def test_jit_equals_no_jit_and_dropout_uses_the_key():
    cfg, model, tokens = small_gpt(dropout_rate=0.2, attention_dropout_rate=0.1)
    params = model.init(jax.random.key(0), tokens)
    np.testing.assert_allclose(model.apply(params, tokens), M.build("gpt", cfg).apply(params, tokens), **TOL)
    a, b = (model.apply(params, tokens, key=jax.random.key(s), train=True) for s in (1, 2))
    assert not np.allclose(a, b)


def test_config_errors_name_the_numbers():
    with pytest.raises(ValueError, match="d_model=30 must be divisible by num_heads=4"):
        small_gpt(d_model=30)
    with pytest.raises(ValueError, match="num_heads=4 must be divisible by num_kv_heads=3"):
        small_gpt(num_kv_heads=3)
    with pytest.raises(ValueError, match="unknown transformer size"):
        small_gpt(size="huge")
    cfg, model, tokens = small_gpt()
    params = model.init(jax.random.key(0), tokens[:, :4])
    with pytest.raises(ValueError, match="sequence length 9 exceeds the 4 learned positions"):
        model.apply(params, tokens)


def test_size_table_rows_and_overrides():
    assert T.GPTConfig(size="small").dims() == (12, 12, 768)
    assert T.GPTConfig(size="small", num_layers=2).dims() == (2, 12, 768)


# ----------------------------------------------------------------------------- encoder
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_encoder_shapes_and_sequence_input(pooling):
    model = M.build("transformer", num_outputs=3, size="tiny", pooling=pooling)
    x = jax.random.normal(jax.random.key(0), (4, 10, 4))
    params = model.init(jax.random.key(1), x)
    apply = jax.jit(model.apply)
    assert apply(params, x).shape == (4, 3)
    assert ("cls" in params) == (pooling == "cls")
    seq = x[..., 0]                                          # [B, T]: one feature per step
    assert apply(model.init(jax.random.key(1), seq), seq).shape == (4, 3)


def test_encoder_without_positions_is_permutation_invariant():
    model = M.build("transformer", num_outputs=3, size="tiny", positions="none", pooling="mean")
    x = jax.random.normal(jax.random.key(0), (2, 7, 4))
    params = model.init(jax.random.key(1), x)
    perm = jnp.array([3, 0, 6, 1, 5, 2, 4])
    apply = jax.jit(model.apply)
    np.testing.assert_allclose(apply(params, x[:, perm]), apply(params, x), **TOL)


def test_shakespeare_has_nanogpt_vocabulary_and_split():
    from zoo.data import text
    ds = text.load(text.TextConfig(path=str(SHAKESPEARE), seq_len=64))
    assert len(ds.vocab) == 65 and ds.split == int(1_115_394 * 0.9)
    model = M.build("gpt", vocab_size=len(ds.vocab))
    batch = ds.train_batch(0, 0, 12)
    params = model.init(jax.random.key(0), batch["x"])
    assert jax.jit(model.apply)(params, batch["x"]).shape == (12, 64, 65)


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
def test_kv_cache_bytes_shrink_with_the_key_value_heads(num_kv_heads):
    """2 (keys, values) x layers x positions x num_kv_heads x head_dim float32 numbers."""
    cfg = T.GPTConfig(num_layers=3, num_heads=4, d_model=32, num_kv_heads=num_kv_heads, vocab_size=11)
    assert M.REGISTRY["gpt"].cache_bytes(cfg, 64) == 2 * 3 * 64 * num_kv_heads * 8 * 4
