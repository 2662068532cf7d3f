"""Transformers: an encoder classifier and a decoder-only causal language model (GPT).

Axis legend: B batch, T sequence length, D_in input features, D model width (d_model),
V vocabulary, K classes, L layers.

Pre-norm block (Radford et al. 2019, GPT-2; Xiong et al. 2020), as nanoGPT writes it:

    h = h + drop(attention(norm_1(h)))          attention: zoo.models.attention
    h = h + drop(mlp(norm_2(h)))
    mlp(u) = act(u W_up + b_up) W_down + b_down                   "standard", act GELU
    mlp(u) = (silu(u W_gate) * (u W_up)) W_down                   "swiglu" (Shazeer 2020)

norm is LayerNorm or RMSNorm. SwiGLU's hidden width is 2/3 of the standard one so both MLPs
hold the same number of parameters (as LLaMA does).

Models
- "transformer" (encoder classifier, as ViT, Dosovitskiy et al. 2021): x [B, T, D_in]
  (a sequence, or patches) -> h_0 = x W_embed (+ a learned CLS token first) (+ learned
  positions) -> L bidirectional blocks -> norm -> pool (the CLS row, or the mean over T)
  -> logits [B, K].
- "gpt" (decoder-only LM): tokens [B, T] int -> h_0 = E[tokens] (+ learned positions)
  -> L causal blocks -> norm -> logits [B, T, V] = h W_head, with W_head = E^T when
  `tie_embeddings` (Press & Wolf 2017). `generate` samples continuations with a KV cache.

Positions: a learned table added to h_0 ("learned", GPT-2), rotary angles applied to q and k
inside attention ("rotary"), or none. Dropout (dropout_rate) acts on h_0 and on each residual
branch, attention dropout on the softmax weights, as in nanoGPT.

Initialisation follows GPT-2: weights N(0, 0.02^2), residual output projections
N(0, (0.02 / sqrt(2L))^2), biases zero, norms one.

`size` names a row of SIZES (layers, heads, width); explicit num_layers / num_heads /
d_model override it. nanoGPT's CPU recipe for Shakespeare is "nano" with context 64.

Memory and compile time (same function, tested): `remat` recomputes each block's activations
in the backward pass instead of storing them (jax.checkpoint per block; "dots" keeps the
matmul outputs, recomputing only the cheap elementwise work). `scan_layers` stores the blocks'
params stacked, {"blocks": {leaf: [L, ...]}}, and runs one block under lax.scan, so compile
time does not grow with depth; the list layout {"blocks": [block, ...]} loops in Python.
`apply` runs whichever layout it is given; `stack_layers` / `unstack_layers` convert any
pytree holding them (params, optimizer state, checkpoints) between the two.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

import zoo.models.attention as A
import zoo.models.layers as L
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry

SIZES: dict[str, tuple[int, int, int]] = {   # name: (num_layers, num_heads, d_model)
    "tiny": (2, 2, 64),
    "nano": (4, 4, 128),          # nanoGPT shakespeare_char on CPU, 0.8M params
    "mini": (6, 6, 384),          # nanoGPT shakespeare_char on GPU, 10.7M params
    "small": (12, 12, 768),       # GPT-2 small, 124M params
    "medium": (24, 16, 1024),     # GPT-2 medium, 350M params
}


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    """Fields shared by both models: the trunk of pre-norm blocks."""
    size: str = "nano"                     # row of SIZES
    num_layers: int | None = None          # None: from `size`
    num_heads: int | None = None
    d_model: int | None = None
    num_kv_heads: int | None = None        # None: num_heads (grouped-query when fewer)
    mlp: Literal["standard", "swiglu"] = "standard"
    mlp_ratio: float = 4.0
    activation: str = "gelu"               # of the standard MLP
    norm: Literal["layer", "rms"] = "layer"
    positions: Literal["learned", "rotary", "none"] = "learned"
    rope_base: float = 10000.0
    context_length: int | None = None      # learned positions: table rows; None: the example's T
    bias: bool = True
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    attention: Literal["auto", "fused", "cudnn", "explicit"] = "auto"  # zoo.models.attention.attend
    remat: Literal["none", "block", "dots"] = "none"   # recompute activations per block (module docstring)
    scan_layers: bool = False              # stacked block params under lax.scan (module docstring)

    def dims(self) -> tuple[int, int, int]:
        """(num_layers, num_heads, d_model), explicit fields over the `size` row."""
        if self.size not in SIZES:
            raise ConfigError(f"unknown transformer size {self.size!r}; valid: {', '.join(SIZES)}")
        layers, heads, width = SIZES[self.size]
        dims = (self.num_layers or layers, self.num_heads or heads, self.d_model or width)
        A.check_heads(dims[2], dims[1], self.num_kv_heads or dims[1])
        return dims


@dataclasses.dataclass(frozen=True)
class EncoderConfig(BlockConfig):
    """Model "transformer": the encoder classifier."""
    num_outputs: int | None = None         # classes; None: taken from the dataset
    pooling: Literal["cls", "mean"] = "cls"


@dataclasses.dataclass(frozen=True)
class GPTConfig(BlockConfig):
    """Model "gpt": the decoder-only language model."""
    vocab_size: int | None = None          # None: taken from the dataset
    tie_embeddings: bool = True


# ----------------------------------------------------------------------------- block
def mlp_init(key: jax.Array, cfg: BlockConfig, d: int, out_std: float) -> dict:
    hidden = int(cfg.mlp_ratio * d) if cfg.mlp == "standard" else int(round(2 * cfg.mlp_ratio * d / 3))
    k_up, k_gate, k_down = jax.random.split(key, 3)

    def proj(k, d_in, d_out, std):
        p = {"kernel": A.normal(k, (d_in, d_out), std)}
        if cfg.bias and cfg.mlp == "standard":
            p["bias"] = jnp.zeros((d_out,), jnp.float32)
        return p

    params = {"up": proj(k_up, d, hidden, 0.02), "down": proj(k_down, hidden, d, out_std)}
    if cfg.mlp == "swiglu":
        params["gate"] = proj(k_gate, d, hidden, 0.02)
    return params


def mlp(cfg: BlockConfig, params: dict, u: jax.Array) -> jax.Array:
    if cfg.mlp == "swiglu":
        return L.dense(params["down"], jax.nn.silu(L.dense(params["gate"], u)) * L.dense(params["up"], u))
    return L.dense(params["down"], L.activation(cfg.activation)(L.dense(params["up"], u)))


def norm_init(cfg: BlockConfig, d: int) -> dict:
    return L.layernorm_init(d) if cfg.norm == "layer" else L.rmsnorm_init(d)


def norm(cfg: BlockConfig, params: dict, h: jax.Array) -> jax.Array:
    return L.layernorm(params, h, eps=1e-5) if cfg.norm == "layer" else L.rmsnorm(params, h, eps=1e-5)


def block_init(key: jax.Array, cfg: BlockConfig) -> dict:
    num_layers, num_heads, d = cfg.dims()
    out_std = 0.02 / math.sqrt(2 * num_layers)
    k_attn, k_mlp = jax.random.split(key)
    return {"attention_norm": norm_init(cfg, d),
            "attention": A.attention_init(k_attn, d, num_heads, cfg.num_kv_heads, bias=cfg.bias,
                                          out_std=out_std),
            "mlp_norm": norm_init(cfg, d),
            "mlp": mlp_init(k_mlp, cfg, d, out_std)}


def block(cfg: BlockConfig, params: dict, h: jax.Array, *, causal: bool, positions: jax.Array,
          cache: dict | None, key: jax.Array | None, train: bool,
          key_mask: jax.Array | None = None) -> tuple[jax.Array, dict | None]:
    """One pre-norm block: h [B, T, D] -> (h [B, T, D], updated cache); key_mask [B, T] marks
    the real tokens attention may read (padding is False)."""
    k_attn, k_drop1, k_drop2 = L.split_key(key, 3)
    a, cache = A.multi_head_attention(
        params["attention"], norm(cfg, params["attention_norm"], h), num_heads=cfg.dims()[1],
        causal=causal, key_mask=key_mask, positions=positions, cache=cache, implementation=cfg.attention,
        rope_base=cfg.rope_base if cfg.positions == "rotary" else None,
        dropout_rate=cfg.attention_dropout_rate, key=k_attn, train=train)
    h = h + L.dropout(k_drop1, a, cfg.dropout_rate, train)
    m = mlp(cfg, params["mlp"], norm(cfg, params["mlp_norm"], h))
    return h + L.dropout(k_drop2, m, cfg.dropout_rate, train), cache


def stack(cfg: BlockConfig, params: dict, h: jax.Array, *, causal: bool, positions: jax.Array,
          caches: list | None = None, key: jax.Array | None = None, train: bool = False,
          key_mask: jax.Array | None = None) -> tuple[jax.Array, list | None]:
    """Embedding dropout, the L blocks and the final norm: [B, T, D] -> [B, T, D]; key_mask
    [B, T] marks the real tokens (padding is False, never attended to)."""
    num_layers = cfg.dims()[0]
    keys = L.split_key(key, num_layers + 1)
    h = L.dropout(keys[-1], h, cfg.dropout_rate, train)

    def step(block_params, h, cache, k):
        return block(cfg, block_params, h, causal=causal, positions=positions, cache=cache, key=k, train=train,
                     key_mask=key_mask)

    step = L.remat(step, cfg.remat)
    if is_stacked(params["blocks"]) and caches is None:
        def body(h, inputs):
            block_params, k = inputs
            return step(block_params, h, None, k)[0], None
        h, _ = jax.lax.scan(body, h, (params["blocks"], None if key is None else jnp.stack(keys[:-1])))
        return norm(cfg, params["final_norm"], h), None
    new_caches = []
    for i, block_params in enumerate(layer_list(params["blocks"])):
        h, cache = step(block_params, h, None if caches is None else caches[i], keys[i])
        new_caches.append(cache)
    return norm(cfg, params["final_norm"], h), (None if caches is None else new_caches)


# ----------------------------------------------------------------------------- layer layouts
def is_stacked(blocks) -> bool:
    """Stacked layout: one dict of [L, ...] leaves; the list layout is a list of block dicts."""
    return isinstance(blocks, dict)


def layer_list(blocks) -> list:
    """The blocks as a list of per-layer params, from either layout."""
    if not is_stacked(blocks):
        return list(blocks)
    return [jax.tree.map(lambda a, i=i: a[i], blocks) for i in range(jax.tree.leaves(blocks)[0].shape[0])]


def _holds_blocks(x) -> bool:
    return isinstance(x, dict) and "blocks" in x


def _relayout(tree, convert):
    """`tree` with every {"blocks": ...} mapping in it (params, Adam moments, ...) converted."""
    return jax.tree.map(lambda x: {**x, "blocks": convert(x["blocks"])} if _holds_blocks(x) else x,
                        tree, is_leaf=_holds_blocks)


def stack_layers(tree):
    """Every list layout of blocks in `tree` as the stacked layout (leaves [L, ...]);
    ShapeDtypeStructs stack too (sharding dropped: lay them out anew)."""
    def stack_blocks(blocks):
        if is_stacked(blocks):
            return blocks
        return jax.tree.map(_stack_leaves, *blocks)
    return _relayout(tree, stack_blocks)


def _stack_leaves(*leaves):
    if isinstance(leaves[0], jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct((len(leaves), *leaves[0].shape), leaves[0].dtype)
    return jnp.stack(leaves)


def unstack_layers(tree):
    """Every stacked layout of blocks in `tree` as the list layout, one dict per layer."""
    def unstack_blocks(blocks):
        if not is_stacked(blocks):
            return blocks
        first = jax.tree.leaves(blocks)[0]
        if isinstance(first, jax.ShapeDtypeStruct):
            return [jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), blocks)
                    for _ in range(first.shape[0])]
        return layer_list(blocks)
    return _relayout(tree, unstack_blocks)


def add_positions(cfg: BlockConfig, params: dict, h: jax.Array, positions: jax.Array) -> jax.Array:
    if cfg.positions != "learned":
        return h
    return h + jnp.take(params["position"]["embedding"], positions, axis=0).astype(h.dtype)


def trunk_init(key: jax.Array, cfg: BlockConfig, length: int) -> dict:
    """Blocks, final norm and (learned positions) a [length, D] position table."""
    num_layers, _, d = cfg.dims()
    keys = jax.random.split(key, num_layers + 1)
    blocks = [block_init(keys[i], cfg) for i in range(num_layers)]
    params = {"blocks": blocks, "final_norm": norm_init(cfg, d)}
    if cfg.scan_layers:
        params = stack_layers(params)
    if cfg.positions == "learned":
        params["position"] = {"embedding": A.normal(keys[-1], (length, d), 0.02)}
    return params


def check_length(cfg: BlockConfig, params: dict, t: int) -> None:
    if cfg.positions == "learned" and t > params["position"]["embedding"].shape[0]:
        raise ConfigError(f"sequence length {t} exceeds the {params['position']['embedding'].shape[0]} "
                         "learned positions (model.context_length)")


# ----------------------------------------------------------------------------- encoder classifier
def encoder_trunk_init(k_cls: jax.Array, k_trunk: jax.Array, cfg: EncoderConfig, num_tokens: int) -> dict:
    """The encoder between embedding and head: the CLS token (with CLS pooling), the blocks,
    the final norm and the positions of num_tokens (+ CLS) rows. ViT shares it (zoo.models.vit)."""
    extra = 1 if cfg.pooling == "cls" else 0
    params = trunk_init(k_trunk, cfg, cfg.context_length or num_tokens + extra)
    if cfg.pooling == "cls":
        params["cls"] = A.normal(k_cls, (cfg.dims()[2],), 0.02)
    return params


def encode(cfg: EncoderConfig, params: dict, h: jax.Array, *, key: jax.Array | None,
           train: bool) -> jax.Array:
    """Embedded tokens h [B, T, D] -> the pooled representation [B, D]: the CLS token put
    first, positions, the bidirectional blocks, the final norm, then the CLS row or the mean."""
    if cfg.pooling == "cls":
        cls = jnp.broadcast_to(params["cls"].astype(h.dtype), (h.shape[0], 1, h.shape[-1]))
        h = jnp.concatenate([cls, h], axis=1)                              # [B, 1 + T, D]
    check_length(cfg, params, h.shape[1])
    positions = jnp.arange(h.shape[1])
    h, _ = stack(cfg, params, add_positions(cfg, params, h, positions), causal=False,
                 positions=positions, key=key, train=train)
    return h[:, 0] if cfg.pooling == "cls" else h.mean(axis=1)


def build_encoder(name: str, cfg: EncoderConfig) -> Model:
    if cfg.num_outputs is None:
        raise ConfigError("transformer needs num_outputs (the trainer takes it from the dataset)")
    _, _, d = cfg.dims()

    def features(x):
        """[B, T] or [B, T, F] -> [B, T, F] floats (layers.floating)."""
        return L.floating(x[..., None] if x.ndim == 2 else x)

    def init(key, x):
        x = features(x)
        k_embed, k_cls, k_trunk, k_head = jax.random.split(key, 4)
        return {"embed": {"kernel": A.normal(k_embed, (x.shape[-1], d), 0.02),
                          "bias": jnp.zeros((d,), jnp.float32)},
                **encoder_trunk_init(k_cls, k_trunk, cfg, x.shape[1]),
                "head": {"kernel": A.normal(k_head, (d, cfg.num_outputs), 0.02),
                         "bias": jnp.zeros((cfg.num_outputs,), jnp.float32)}}

    def apply(params, x, *, key=None, train=False):
        h = L.dense(params["embed"], features(x))                         # [B, T, D]
        return L.dense(params["head"], encode(cfg, params, h, key=key, train=train))

    return Model.of(init, apply)


# ----------------------------------------------------------------------------- GPT
def gpt_forward(cfg: GPTConfig, params: dict, tokens: jax.Array, *, positions: jax.Array,
                caches: list | None = None, key: jax.Array | None = None,
                train: bool = False) -> tuple[jax.Array, list | None]:
    """tokens [B, T] at positions [T] -> (logits [B, T, V] float32, updated caches)."""
    h = jnp.take(params["embed"]["embedding"], tokens, axis=0)            # [B, T, D]
    h, caches = stack(cfg, params, add_positions(cfg, params, h, positions), causal=True,
                      positions=positions, caches=caches, key=key, train=train)
    if cfg.tie_embeddings:
        logits = h @ params["embed"]["embedding"].T.astype(h.dtype)
    else:
        logits = L.dense(params["head"], h)
    return logits.astype(jnp.float32), caches


def build_gpt(name: str, cfg: GPTConfig) -> Model:
    if cfg.vocab_size is None:
        raise ConfigError("gpt needs vocab_size (the trainer takes it from the dataset)")
    _, _, d = cfg.dims()

    def init(key, tokens):
        k_embed, k_trunk, k_head = jax.random.split(key, 3)
        params = {"embed": {"embedding": A.normal(k_embed, (cfg.vocab_size, d), 0.02)},
                  **trunk_init(k_trunk, cfg, cfg.context_length or tokens.shape[1])}
        if not cfg.tie_embeddings:
            params["head"] = {"kernel": A.normal(k_head, (d, cfg.vocab_size), 0.02)}
        return params

    def apply(params, tokens, *, key=None, train=False):
        check_length(cfg, params, tokens.shape[1])
        logits, _ = gpt_forward(cfg, params, tokens, positions=jnp.arange(tokens.shape[1]),
                                key=key, train=train)
        return logits

    return Model.of(init, apply)




# ----------------------------------------------------------------------------- generation
def init_caches(cfg: GPTConfig, batch_size: int, length: int, dtype=jnp.float32) -> list:
    """One empty KV cache of `length` positions per block (decoding loops over the blocks,
    whichever their params' layout)."""
    num_layers, num_heads, d = cfg.dims()
    return [A.init_cache(batch_size, length, cfg.num_kv_heads or num_heads, d // num_heads, dtype)
            for _ in range(num_layers)]


def decode(cfg: GPTConfig, params: dict, tokens: jax.Array, caches: list,
           index: jax.Array | int) -> tuple[jax.Array, list]:
    """Feed tokens [B, T] at positions index .. index + T - 1 through the cached model:
    (logits [B, T, V], caches holding every position up to index + T - 1)."""
    positions = index + jnp.arange(tokens.shape[1])
    return gpt_forward(cfg, params, tokens, positions=positions, caches=caches)


def context_window(cfg: GPTConfig, params: dict) -> int | None:
    """How many positions the model can see: the learned table, else model.context_length."""
    if cfg.positions == "learned":
        return params["position"]["embedding"].shape[0]
    return cfg.context_length


def generate(cfg: GPTConfig, params: dict, prompt, *, steps: int, key: jax.Array,
             temperature: float = 1.0, top_k: int | None = None) -> jax.Array:
    """Continue prompt [B, T0] int by `steps` sampled tokens -> [B, T0 + steps] int32.

    Tokens whose context fits the model's window are decoded incrementally with the KV cache
    (one position per step); later ones see the last `window` tokens through a full forward
    pass, as nanoGPT crops its context. Compiled once per (config, shapes, steps, sampling).
    """
    return _generate(cfg, params, jnp.asarray(prompt, jnp.int32), key, steps=steps,
                     temperature=float(temperature), top_k=top_k)


@functools.partial(jax.jit, static_argnames=("cfg", "steps", "temperature", "top_k"))
def _generate(cfg: GPTConfig, params: dict, prompt: jax.Array, key: jax.Array, *, steps: int,
              temperature: float, top_k: int | None) -> jax.Array:
    batch, t0 = prompt.shape
    total = t0 + steps
    window = context_window(cfg, params) or total
    num_cached = max(0, min(steps, window + 1 - t0))
    keys = jax.random.split(key, max(steps, 1))

    def cached(tokens):
        caches = init_caches(cfg, batch, min(total, window))
        logits, caches = decode(cfg, params, prompt, caches, 0)
        token = L.sample_token(keys[0], logits[:, -1], temperature, top_k)

        def step(carry, i):                    # sample token i from position i - 1
            tokens, caches, token = carry
            tokens = jax.lax.dynamic_update_slice(tokens, token[:, None], (0, i - 1))
            logits, caches = decode(cfg, params, token[:, None], caches, i - 1)
            token = L.sample_token(keys[i - t0], logits[:, 0], temperature, top_k)
            return (tokens, caches, token), None

        (tokens, _, token), _ = jax.lax.scan(step, (tokens, caches, token),
                                             jnp.arange(t0 + 1, t0 + num_cached))
        return jax.lax.dynamic_update_slice(tokens, token[:, None], (0, t0 + num_cached - 1))

    def windowed(tokens, i):                   # sample token i from the last `window` tokens
        context = jax.lax.dynamic_slice(tokens, (0, i - window), (batch, window))
        logits, _ = gpt_forward(cfg, params, context, positions=jnp.arange(window))
        token = L.sample_token(keys[i - t0], logits[:, -1], temperature, top_k)
        return jax.lax.dynamic_update_slice(tokens, token[:, None], (0, i)), None

    tokens = jnp.zeros((batch, total), jnp.int32).at[:, :t0].set(prompt)
    if num_cached:
        tokens = cached(tokens)
    if total > t0 + num_cached:
        tokens, _ = jax.lax.scan(windowed, tokens, jnp.arange(t0 + num_cached, total))
    return tokens


def _exact_permutations(cfg: EncoderConfig, group: str, elements: list) -> tuple[str, np.ndarray]:
    """Without positions the encoder is a set function: every token permutation is exact."""
    exact = group == "permutation" and cfg.positions == "none"
    return ("every element" if exact else ""), np.full(len(elements), exact)


def _for_platform(cfg: BlockConfig, platform: str) -> BlockConfig:
    """`attention="auto"` made concrete for the platform the model will run on."""
    if cfg.attention != "auto":
        return cfg
    return dataclasses.replace(cfg, attention=A.for_platform(platform))


def cache_bytes(cfg: GPTConfig, length: int) -> int:
    """Bytes of the float32 KV cache of one sequence of `length` positions: per block, keys and
    values [length, num_kv_heads, head_dim] (grouped-query attention shrinks it by
    num_heads / num_kv_heads)."""
    caches = jax.eval_shape(lambda: init_caches(cfg, 1, length))
    return sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(caches))


def _sample(name: str, cfg: GPTConfig, params: dict, prompt, **options) -> jax.Array:
    return generate(cfg, params, prompt, **options)


MODELS = {
    "transformer": ModelEntry(EncoderConfig, build_encoder, for_platform=_for_platform, sequence=True,
                              symmetry="permutation", exact_symmetry=_exact_permutations,
                              probe_points="zoo.probes.gradflow:transformer_points"),
    "gpt": ModelEntry(GPTConfig, build_gpt, sample=_sample, for_platform=_for_platform, sequence=True,
                      cache_bytes=cache_bytes),
}
