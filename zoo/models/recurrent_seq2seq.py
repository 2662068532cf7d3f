"""The attentional encoder-decoder RNN (Bahdanau, Cho & Bengio 2015, "Neural machine translation
by jointly learning to align and translate"), with GRU or LSTM cells of zoo.models.recurrent.

Axis legend: B batch, S source length, T target length, E embedding width, H hidden units,
A attention width, V vocabulary (one, shared by source and target).

    h_j = [fwd_j ; bwd_j]                       [B, S, 2H]  a bidirectional layer over E[source]
    s_0 = tanh(bwd_1 W_s)                       [B, H]      the backward state at the first word
    per target step i (teacher-forced in training, one step per token when decoding):
        e_ij = v . tanh(s_{i-1} W_a + h_j U_a)  [B, S]      additive attention, PAD positions masked
        alpha_i = softmax_j(e_ij),  c_i = sum_j alpha_ij h_j            [B, 2H]
        s_i = cell(s_{i-1}, [E y_{i-1} ; c_i])  [B, H]      (an LSTM carries (s, memory cell))
        logits_i = [s_i ; c_i ; E y_{i-1}] W_o + b_o        [B, V]

Deviations from the paper: the output layer is one linear map of [s_i; c_i; E y_{i-1}] (the
paper's is a maxout hidden layer before it), the input and output embeddings are one shared
table per side only as far as the vocabulary is shared, and the GRU is zoo's (PyTorch's reset
gate placement). Decoding (greedy, beam search with length penalty) is zoo.models.decoding
with the cell's carry as the state and h_j U_a computed once per source.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

import zoo.models.decoding as decoding
import zoo.models.layers as L
import zoo.models.recurrent as R
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry

PAD, BOS, EOS = 0, 1, 2   # zoo.data.translation's ids


@dataclasses.dataclass(frozen=True)
class RecurrentSeq2SeqConfig:
    vocab_size: int | None = None          # None: taken from the dataset
    embed_dim: int = 64
    hidden_size: int = 128
    attention_size: int = 128
    beam_size: int = 4                     # translate(): 1 is greedy
    length_penalty: float = 0.6            # alpha of ((5 + |Y|) / 6)^alpha (Wu et al. 2016)
    max_decode_length: int | None = None   # translate()'s output tokens; None: from the dataset


def init_params(key: jax.Array, kind: str, cfg: RecurrentSeq2SeqConfig) -> dict:
    e, h, a = cfg.embed_dim, cfg.hidden_size, cfg.attention_size
    keys = jax.random.split(key, 8)
    return {"embed": {"embedding": 0.1 * jax.random.normal(keys[0], (cfg.vocab_size, e))},
            "encoder": R.stack_init(keys[1], kind, e, h, 1, True)[0],
            "init": L.dense_init(keys[2], h, h),
            "attention": {"query": L.dense_init(keys[3], h, a, bias=False),
                          "key": L.dense_init(keys[4], 2 * h, a),
                          "v": L.fan_in_uniform(keys[5], (a,), a)},
            "decoder": R.cell_init(keys[6], kind, e + 2 * h, h),
            "out": L.dense_init(keys[7], h + 2 * h + e, cfg.vocab_size)}


def encode(kind: str, params: dict, source: jax.Array) -> tuple[dict, jax.Array]:
    """source [B, S] -> (memory {"h": [B, S, 2H], "keys": h U_a [B, S, A], "mask": [B, S]}, s_0 carry)."""
    mask = source != PAD
    x = jnp.take(params["embed"]["embedding"], source, axis=0)
    annotations, final = R.stack(kind, [params["encoder"]], x, lengths=mask.sum(-1))
    s0 = jnp.tanh(L.dense(params["init"], R.hidden(final[0][1])))    # from the backward direction
    carry = (s0, jnp.zeros_like(s0)) if kind == "lstm" else s0
    return {"h": annotations, "keys": L.dense(params["attention"]["key"], annotations), "mask": mask}, carry


def attention_weights(params: dict, memory: dict, s: jax.Array) -> jax.Array:
    """alpha [B, S] of the previous decoder state s [B, H] over the source."""
    e = jnp.tanh(L.dense(params["attention"]["query"], s)[:, None, :] + memory["keys"]) @ params["attention"]["v"]
    return jax.nn.softmax(jnp.where(memory["mask"], e, jnp.finfo(e.dtype).min), axis=-1)


def decoder_step(kind: str, params: dict, memory: dict, carry, token: jax.Array):
    """One target step: (carry s_{i-1}, token y_{i-1} [B]) -> (carry s_i, logits [B, V], alpha [B, S])."""
    alpha = attention_weights(params, memory, R.hidden(carry))
    context = jnp.einsum("bs,bsd->bd", alpha, memory["h"])
    y = jnp.take(params["embed"]["embedding"], token, axis=0)
    carry, s = R.make_cell(kind)(params["decoder"], carry, jnp.concatenate([y, context], -1))
    return carry, L.dense(params["out"], jnp.concatenate([s, context, y], -1)), alpha


def forward(kind: str, params: dict, source: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Teacher-forced: (logits [B, T, V], attention [B, T, S])."""
    memory, carry = encode(kind, params, source)

    def step(carry, token):
        carry, logits, alpha = decoder_step(kind, params, memory, carry, token)
        return carry, (logits, alpha)
    _, (logits, alpha) = jax.lax.scan(step, carry, target.T)
    return jnp.swapaxes(logits, 0, 1).astype(jnp.float32), jnp.swapaxes(alpha, 0, 1)


def build(name: str, cfg: RecurrentSeq2SeqConfig) -> Model:
    kind = name.split("_")[0]
    if cfg.vocab_size is None:
        raise ConfigError(f"{name} needs vocab_size (the trainer takes it from the dataset)")

    def init(key, x):
        return init_params(key, kind, cfg)

    def apply(params, x, *, key=None, train=False):
        """x {"source": [B, S] int, "target": [B, T] int (BOS first)} -> logits [B, T, V]."""
        return forward(kind, params, x["source"], x["target"])[0]

    return Model.of(init, apply)


def translate(kind: str, cfg: RecurrentSeq2SeqConfig, params: dict, source, *, beam_size: int | None = None,
              length_penalty: float | None = None, max_length: int | None = None) -> jax.Array:
    """source [B, S] int -> output ids [B, max_length] int32 (EOS, then PAD, after the text)."""
    length = max_length or cfg.max_decode_length
    if length is None:
        raise ConfigError("translating needs model.max_decode_length (the trainer takes it from the dataset)")
    return _translate(kind, params, jnp.asarray(source, jnp.int32),
                      beam_size=cfg.beam_size if beam_size is None else beam_size,
                      length_penalty=float(cfg.length_penalty if length_penalty is None else length_penalty),
                      max_length=length)


@functools.partial(jax.jit, static_argnames=("kind", "beam_size", "length_penalty", "max_length"))
def _translate(kind: str, params: dict, source: jax.Array, *, beam_size: int, length_penalty: float,
               max_length: int) -> jax.Array:
    memory, carry = encode(kind, params, source)
    memory, carry = jax.tree.map(lambda a: jnp.repeat(a, beam_size, axis=0), (memory, carry))   # [B*K, ...]

    def step(carry, token, i):
        carry, logits, _ = decoder_step(kind, params, memory, carry, token)
        return logits, carry
    options = dict(batch=source.shape[0], max_length=max_length, bos=BOS, eos=EOS, pad=PAD)
    if beam_size == 1:
        return decoding.greedy(step, carry, **options)
    return decoding.beam_search(step, carry, beam_size=beam_size, alpha=length_penalty, **options)


def _translate_entry(name: str, cfg: RecurrentSeq2SeqConfig, params: dict, source, **options) -> jax.Array:
    return translate(name.split("_")[0], cfg, params, source, **options)


def _alignment(name: str, cfg: RecurrentSeq2SeqConfig, params: dict, x: dict) -> jax.Array:
    return forward(name.split("_")[0], params, x["source"], x["target"])[1]


MODELS = {
    "gru_seq2seq": ModelEntry(RecurrentSeq2SeqConfig, build, translate=_translate_entry, alignment=_alignment),
    "lstm_seq2seq": ModelEntry(RecurrentSeq2SeqConfig, build, translate=_translate_entry, alignment=_alignment),
}
