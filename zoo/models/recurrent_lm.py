"""Recurrent language models: token ids [B, T] -> next-token logits [B, T, V], and sampling.

Axis legend: B batch, T time, E embedding, H hidden units, V vocabulary.

    e_t = E[x_t]                                   (embedding table [V, E])
    h_t = stacked LSTM / GRU / Elman layers (zoo.models.recurrent) over e_1..e_t
    logits_t = h_t W_out + b_out                   [B, T, V]

A character-level LSTM language model as in Graves (2013) and Karpathy's char-rnn; dropout
(Zaremba et al. 2014) on the embeddings, between layers and before the head. Generation reads
the prompt once, then advances the carried state one sampled token at a time.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

import zoo.models.layers as L
import zoo.models.recurrent as R
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry


@dataclasses.dataclass(frozen=True)
class RecurrentLMConfig:
    """Character/token language model: ids [B, T] -> next-token logits [B, T, V]."""
    vocab_size: int | None = None   # None: taken from the dataset
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    dropout_rate: float = 0.0       # on the embeddings, between layers, before the head
    remember_bias: float = 0.0      # init bias of the LSTM forget / GRU update gate
    impl: Literal["scan", "fused"] = "scan"  # scan: the cell under lax.scan, measured faster (bench/README.md)
    unroll: int = 1
    remat: Literal["none", "block", "dots"] = "none"  # recompute activations per layer (recurrent.stack)


def lm_init(kind, cfg, key):
    k_embed, k_rnn, k_head = jax.random.split(key, 3)
    return {"embed": jax.random.normal(k_embed, (cfg.vocab_size, cfg.embed_dim), jnp.float32),
            "rnn": R.stack_init(k_rnn, kind, cfg.embed_dim, cfg.hidden_size, cfg.num_layers, False,
                                cfg.remember_bias),
            "head": L.dense_init(k_head, cfg.hidden_size, cfg.vocab_size)}


def lm_apply(kind, cfg, params, ids, state=None, *, key=None, train=False):
    """ids [B, T] -> (logits [B, T, V], final state); `state` continues a previous call."""
    keys = L.split_key(key, 3)
    x = L.dropout(keys[0], params["embed"][ids], cfg.dropout_rate, train)
    ys, state = R.stack(kind, params["rnn"], x, initial_state=state, dropout_rate=cfg.dropout_rate,
                        key=keys[1], train=train, impl=cfg.impl, unroll=cfg.unroll, remat=cfg.remat)
    ys = L.dropout(keys[2], ys, cfg.dropout_rate, train)
    return L.dense(params["head"], ys), state


def build_lm(kind: str, cfg: RecurrentLMConfig) -> Model:
    if cfg.vocab_size is None:
        raise ConfigError(f"{kind}_lm needs vocab_size (the trainer takes it from the dataset)")

    def apply(params, ids, *, key=None, train=False):
        return lm_apply(kind, cfg, params, ids, key=key, train=train)[0]

    return Model.of(lambda key, x: lm_init(kind, cfg, key), apply)


def generate(kind: str, cfg: RecurrentLMConfig, params, prompt, *, steps, key, temperature=1.0, top_k=None):
    """Continue prompt ids [B, T0] by `steps` sampled tokens -> int32 [B, T0 + steps].

    The prompt is read once; each new token then advances the carried state by one step.
    """
    logits, state = lm_apply(kind, cfg, params, prompt)

    def body(carry, step_key):
        state, last_logits = carry
        token = L.sample_token(step_key, last_logits, temperature, top_k)
        logits, state = lm_apply(kind, cfg, params, token[:, None], state)
        return (state, logits[:, -1]), token

    _, tokens = jax.lax.scan(body, (state, logits[:, -1]), jax.random.split(key, steps))
    return jnp.concatenate([prompt.astype(jnp.int32), tokens.T], 1)


def _sample(name: str, cfg: RecurrentLMConfig, params, prompt, **options):
    return generate(name.removesuffix("_lm"), cfg, params, prompt, **options)


def _build(name: str, cfg: RecurrentLMConfig) -> Model:
    return build_lm(name.removesuffix("_lm"), cfg)


MODELS = {
    name: ModelEntry(RecurrentLMConfig, _build, sample=_sample, sequence=True) for name in ("rnn_lm", "lstm_lm", "gru_lm")
}
