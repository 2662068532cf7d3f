"""The encoder-decoder Transformer (Vaswani et al. 2017, "Attention is all you need"), translating.

Axis legend: B batch, S source length, T target length, D model width, V vocabulary (one,
shared by source and target, as the paper's), L layers (each of encoder and decoder), N heads.

    e = E[source] * sqrt(D) + P_S                  [B, S, D]   (P: sinusoidal or learned positions)
    memory = encoder(e)                            [B, S, D]   L bidirectional pre-norm blocks
                                                               (zoo.models.transformer.block), PAD keys masked
    h = E[target] * sqrt(D) + P_T                  [B, T, D]   target = BOS, y_1 .. y_{T-1}
    per decoder block (pre-norm):
        h = h + drop(causal_self_attention(norm_1(h)))
        h = h + drop(cross_attention(norm_2(h), memory))      queries from h, keys/values from memory
        h = h + drop(mlp(norm_3(h)))
    logits = norm(h) E^T                           [B, T, V]   (tied output, section 3.4)

Sinusoidal positions (section 3.5): P[p, 2i] = sin(p / 10000^(2i/D)), P[p, 2i+1] = cos(same).
Deviations from the paper: pre-norm blocks (Xiong et al. 2020; the paper's are post-norm),
GPT-2's initialisation (zoo.models.transformer), and the embedding scaled by sqrt(D) only with
sinusoidal positions (a learned table is initialised at the embedding's scale instead). The
loss, label-smoothed cross-entropy with eps_ls = 0.1, is the task's (zoo.tasks.translation).

Decoding (zoo.models.decoding): greedy and beam search (beam 4, length penalty alpha 0.6 as
the paper's, from the config) as one jitted lax.while_loop each, the decoder fed one token
per step against a key/value cache of its self-attention and the cross-attention keys and
values of the memory computed once; `cache=False` recomputes the whole prefix every step
instead (the same tokens: tested).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp

import zoo.models.attention as A
import zoo.models.decoding as decoding
import zoo.models.layers as L
import zoo.models.transformer as T
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry

PAD, BOS, EOS = 0, 1, 2   # zoo.data.translation's ids


@dataclasses.dataclass(frozen=True)
class Seq2SeqConfig(T.BlockConfig):
    """Model "seq2seq": the block fields of zoo.models.transformer, for encoder and decoder."""
    size: str = "tiny"
    positions: Literal["sinusoidal", "learned", "rotary", "none"] = "sinusoidal"
    vocab_size: int | None = None          # None: taken from the dataset
    beam_size: int = 4                     # translate(): 1 is greedy
    length_penalty: float = 0.6            # alpha of ((5 + |Y|) / 6)^alpha (Wu et al. 2016)
    max_decode_length: int | None = None   # translate()'s output tokens; None: from the dataset


# ----------------------------------------------------------------------------- positions, embedding
def sinusoid(positions: jax.Array, d: int) -> jax.Array:
    """[T] positions -> [T, D] sin/cos features at wavelengths 2 pi .. 10000 * 2 pi."""
    inv_freq = 10000.0 ** (-jnp.arange(0, d, 2, dtype=jnp.float32) / d)          # [D/2]
    angle = positions.astype(jnp.float32)[:, None] * inv_freq[None, :]
    return jnp.stack([jnp.sin(angle), jnp.cos(angle)], -1).reshape(len(positions), d)


def embed(cfg: Seq2SeqConfig, params: dict, trunk: dict, tokens: jax.Array, positions: jax.Array) -> jax.Array:
    """tokens [B, T] at positions [T] -> [B, T, D]: the shared embedding plus the trunk's positions."""
    table = params["embed"]["embedding"]
    h = jnp.take(table, tokens, axis=0)
    if cfg.positions == "sinusoidal":
        return h * math.sqrt(table.shape[1]) + sinusoid(positions, table.shape[1]).astype(h.dtype)
    return T.add_positions(cfg, trunk, h, positions)


# ----------------------------------------------------------------------------- decoder block
def decoder_block_init(key: jax.Array, cfg: Seq2SeqConfig) -> dict:
    num_layers, num_heads, d = cfg.dims()
    out_std = 0.02 / math.sqrt(3 * num_layers)     # three residual branches per block
    k_self, k_cross, k_mlp = jax.random.split(key, 3)

    def attention(k):
        return A.attention_init(k, d, num_heads, cfg.num_kv_heads, bias=cfg.bias, out_std=out_std)
    return {"self_attention_norm": T.norm_init(cfg, d), "self_attention": attention(k_self),
            "cross_attention_norm": T.norm_init(cfg, d), "cross_attention": attention(k_cross),
            "mlp_norm": T.norm_init(cfg, d), "mlp": T.mlp_init(k_mlp, cfg, d, out_std)}


def decoder_block(cfg: Seq2SeqConfig, params: dict, h: jax.Array, memory: dict, *, source_mask: jax.Array,
                  positions: jax.Array, cache: dict | None, key: jax.Array | None,
                  train: bool) -> tuple[jax.Array, dict | None]:
    """h [B, T, D], memory: this block's cross-attention keys/values (A.memory_keys) ->
    (h [B, T, D], updated self-attention cache)."""
    num_heads = cfg.dims()[1]
    keys = L.split_key(key, 5)
    a, cache = A.multi_head_attention(
        params["self_attention"], T.norm(cfg, params["self_attention_norm"], h), num_heads=num_heads,
        causal=True, positions=positions, cache=cache, implementation=cfg.attention,
        rope_base=cfg.rope_base if cfg.positions == "rotary" else None,
        dropout_rate=cfg.attention_dropout_rate, key=keys[0], train=train)
    h = h + L.dropout(keys[1], a, cfg.dropout_rate, train)
    c = A.cross_attention(params["cross_attention"], T.norm(cfg, params["cross_attention_norm"], h), memory,
                          num_heads=num_heads, key_mask=source_mask, implementation=cfg.attention,
                          dropout_rate=cfg.attention_dropout_rate, key=keys[2], train=train)
    h = h + L.dropout(keys[3], c, cfg.dropout_rate, train)
    m = T.mlp(cfg, params["mlp"], T.norm(cfg, params["mlp_norm"], h))
    return h + L.dropout(keys[4], m, cfg.dropout_rate, train), cache


# ----------------------------------------------------------------------------- encoder, decoder
def encode(cfg: Seq2SeqConfig, params: dict, source: jax.Array, *, key: jax.Array | None = None,
           train: bool = False) -> tuple[jax.Array, jax.Array]:
    """source [B, S] int -> (memory [B, S, D], source_mask [B, S], True at real tokens)."""
    T.check_length(cfg, params["encoder"], source.shape[1])
    positions = jnp.arange(source.shape[1])
    source_mask = source != PAD
    h = embed(cfg, params, params["encoder"], source, positions)
    memory, _ = T.stack(cfg, params["encoder"], h, causal=False, positions=positions, key=key, train=train,
                        key_mask=source_mask)
    return memory, source_mask


def memory_keys(cfg: Seq2SeqConfig, params: dict, memory: jax.Array) -> list[dict]:
    """Every decoder block's cross-attention keys and values of `memory`, computed once."""
    return [A.memory_keys(p["cross_attention"], memory, num_heads=cfg.dims()[1])
            for p in params["decoder"]["blocks"]]


def decode(cfg: Seq2SeqConfig, params: dict, target: jax.Array, memories: list[dict], source_mask: jax.Array, *,
           positions: jax.Array, caches: list | None = None, key: jax.Array | None = None,
           train: bool = False) -> tuple[jax.Array, list | None]:
    """target [B, T] int at positions [T] -> (logits [B, T, V] float32, updated caches)."""
    trunk = params["decoder"]
    keys = L.split_key(key, len(trunk["blocks"]) + 1)
    h = L.dropout(keys[-1], embed(cfg, params, trunk, target, positions), cfg.dropout_rate, train)
    new_caches = []
    for i, block_params in enumerate(trunk["blocks"]):
        h, cache = decoder_block(cfg, block_params, h, memories[i], source_mask=source_mask, positions=positions,
                                 cache=None if caches is None else caches[i], key=keys[i], train=train)
        new_caches.append(cache)
    h = T.norm(cfg, trunk["final_norm"], h)
    logits = h @ params["embed"]["embedding"].T.astype(h.dtype)
    return logits.astype(jnp.float32), (None if caches is None else new_caches)


def decoder_init(key: jax.Array, cfg: Seq2SeqConfig, length: int) -> dict:
    num_layers, _, d = cfg.dims()
    keys = jax.random.split(key, num_layers + 1)
    params = {"blocks": [decoder_block_init(keys[i], cfg) for i in range(num_layers)],
              "final_norm": T.norm_init(cfg, d)}
    if cfg.positions == "learned":
        params["position"] = {"embedding": A.normal(keys[-1], (length, d), 0.02)}
    return params


def build(name: str, cfg: Seq2SeqConfig) -> Model:
    if cfg.vocab_size is None:
        raise ConfigError("seq2seq needs vocab_size (the trainer takes it from the dataset)")
    if cfg.scan_layers:
        raise ConfigError("seq2seq keeps its blocks as a list: set model.scan_layers=false")
    _, _, d = cfg.dims()

    def init(key, x):
        k_embed, k_encoder, k_decoder = jax.random.split(key, 3)
        return {"embed": {"embedding": A.normal(k_embed, (cfg.vocab_size, d), 0.02)},
                "encoder": T.trunk_init(k_encoder, cfg, cfg.context_length or x["source"].shape[1]),
                "decoder": decoder_init(k_decoder, cfg, cfg.context_length or x["target"].shape[1])}

    def apply(params, x, *, key=None, train=False):
        """x {"source": [B, S] int, "target": [B, T] int (BOS first)} -> logits [B, T, V]."""
        k_encoder, k_decoder = L.split_key(key, 2)
        memory, source_mask = encode(cfg, params, x["source"], key=k_encoder, train=train)
        T.check_length(cfg, params["decoder"], x["target"].shape[1])
        logits, _ = decode(cfg, params, x["target"], memory_keys(cfg, params, memory), source_mask,
                           positions=jnp.arange(x["target"].shape[1]), key=k_decoder, train=train)
        return logits

    return Model.of(init, apply)


# ----------------------------------------------------------------------------- translating
def decoding_length(cfg: Seq2SeqConfig, params: dict, max_length: int | None) -> int:
    length = max_length or cfg.max_decode_length
    if length is None:
        raise ConfigError("translating needs model.max_decode_length (the trainer takes it from the dataset)")
    if cfg.positions == "learned":
        length = min(length, params["decoder"]["position"]["embedding"].shape[0])
    return length


def translate(cfg: Seq2SeqConfig, params: dict, source, *, beam_size: int | None = None,
              length_penalty: float | None = None, max_length: int | None = None,
              cache: bool = True) -> jax.Array:
    """source [B, S] int -> output ids [B, max_length] int32 (EOS, then PAD, after the text),
    by beam search (beam_size > 1) or greedy decoding; defaults from the config. Compiled once
    per (config, shapes, options)."""
    return _translate(cfg, params, jnp.asarray(source, jnp.int32),
                      beam_size=cfg.beam_size if beam_size is None else beam_size,
                      length_penalty=float(cfg.length_penalty if length_penalty is None else length_penalty),
                      max_length=decoding_length(cfg, params, max_length), cache=cache)


@functools.partial(jax.jit, static_argnames=("cfg", "beam_size", "length_penalty", "max_length", "cache"))
def _translate(cfg: Seq2SeqConfig, params: dict, source: jax.Array, *, beam_size: int, length_penalty: float,
               max_length: int, cache: bool) -> jax.Array:
    batch = source.shape[0]
    memory, source_mask = encode(cfg, params, source)
    rows = batch * beam_size
    memory, source_mask = (jnp.repeat(a, beam_size, axis=0) for a in (memory, source_mask))   # [B*K, ...]
    memories = memory_keys(cfg, params, memory)

    if cache:
        num_layers, num_heads, d = cfg.dims()
        state = [A.init_cache(rows, max_length, cfg.num_kv_heads or num_heads, d // num_heads, memory.dtype)
                 for _ in range(num_layers)]

        def step(caches, token, i):          # token [B*K] at position i -> logits [B*K, V]
            logits, caches = decode(cfg, params, token[:, None], memories, source_mask,
                                    positions=i + jnp.arange(1), caches=caches)
            return logits[:, 0], caches
    else:
        state = jnp.full((rows, max_length), PAD, jnp.int32)

        def step(prefix, token, i):          # the whole prefix again, up to position i
            prefix = prefix.at[:, i].set(token)
            logits, _ = decode(cfg, params, prefix, memories, source_mask, positions=jnp.arange(max_length))
            return jnp.take(logits, i, axis=1), prefix

    if beam_size == 1:
        return decoding.greedy(step, state, batch=batch, max_length=max_length, bos=BOS, eos=EOS, pad=PAD)
    return decoding.beam_search(step, state, batch=batch, beam_size=beam_size, max_length=max_length,
                                alpha=length_penalty, bos=BOS, eos=EOS, pad=PAD)


def alignment(cfg: Seq2SeqConfig, params: dict, x: dict) -> jax.Array:
    """The last decoder block's cross-attention weights, averaged over heads: [B, T, S]."""
    memory, source_mask = encode(cfg, params, x["source"])
    target = x["target"]
    positions = jnp.arange(target.shape[1])
    memories = memory_keys(cfg, params, memory)
    h = embed(cfg, params, params["decoder"], target, positions)
    *blocks, last = params["decoder"]["blocks"]
    for i, block_params in enumerate(blocks):
        h, _ = decoder_block(cfg, block_params, h, memories[i], source_mask=source_mask, positions=positions,
                             cache=None, key=None, train=False)
    a, _ = A.multi_head_attention(last["self_attention"], T.norm(cfg, last["self_attention_norm"], h),
                                  num_heads=cfg.dims()[1], causal=True, positions=positions,
                                  implementation=cfg.attention,
                                  rope_base=cfg.rope_base if cfg.positions == "rotary" else None)
    return A.cross_attention_weights(last["cross_attention"], T.norm(cfg, last["cross_attention_norm"], h + a),
                                     memories[-1], num_heads=cfg.dims()[1], key_mask=source_mask)


def _translate_entry(name: str, cfg: Seq2SeqConfig, params: dict, source, **options) -> jax.Array:
    return translate(cfg, params, source, **options)


MODELS = {
    "seq2seq": ModelEntry(Seq2SeqConfig, build, translate=_translate_entry,
                          alignment=lambda name, cfg, params, x: alignment(cfg, params, x),
                          for_platform=T._for_platform),
}
