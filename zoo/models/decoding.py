"""Greedy decoding and beam search for sequence-to-sequence models, each one lax.while_loop.

Axis legend: B batch, K beam size, N = B * K decoder rows, V vocabulary, L max_length.

Both drive a model through one function, whatever it keeps between steps:

    step(state, token [N] int, i) -> (logits [N, V], state)

which reads the token at output position i (BOS at i = 0) and scores position i's successor.
`state` is any pytree with leading axis N: a Transformer decoder's key/value caches, an RNN's
carry, or the whole prefix for recomputation. Beam search reorders its rows as beams are
chosen, so a model never knows which decoder it runs under.

Greedy: y_i = argmax_v logits_i, until every row has emitted EOS or L tokens.

Beam search (Wu et al. 2016, as Vaswani et al. 2017 use it: beam 4, alpha 0.6): each step
extends the K alive hypotheses of a row by every token, keeps the 2K best by log-probability
(at most K of them end in EOS, so K stay alive), moves those ending in EOS to the K finished
ones scored by log p(Y) / lp(Y), lp(Y) = ((5 + |Y|) / 6)^alpha, and keeps the K best of
each. It stops when no alive hypothesis can still beat the worst finished one (alive scores
only fall, and lp grows to at most lp(L)), or after L steps. A row with nothing finished
returns its best alive hypothesis.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

NEG_INF = -1.0e9   # finite, so that -inf - -inf never makes a NaN


def greedy(step: Callable, state, *, batch: int, max_length: int, bos: int, eos: int, pad: int) -> jax.Array:
    """The argmax continuation of every row: [B, L] int32, EOS then PAD after a row's end."""
    def body(carry):
        i, tokens, state, token, done = carry
        logits, state = step(state, token, i)
        token = jnp.argmax(logits, -1).astype(jnp.int32)
        tokens = tokens.at[:, i].set(jnp.where(done, pad, token))
        return i + 1, tokens, state, token, done | (token == eos)

    def cond(carry):
        i, *_, done = carry
        return (i < max_length) & ~jnp.all(done)

    start = (jnp.zeros((), jnp.int32), jnp.full((batch, max_length), pad, jnp.int32), state,
             jnp.full((batch,), bos, jnp.int32), jnp.zeros((batch,), bool))
    return jax.lax.while_loop(cond, body, start)[1]


def length_penalty(length, alpha: float):
    """lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al. 2016, eq. 14)."""
    return ((5.0 + length) / 6.0) ** alpha


def _rows(a: jax.Array, index: jax.Array) -> jax.Array:
    """a [B, M, ...] -> a[b, index[b, j]] : [B, J, ...]."""
    return jnp.take_along_axis(a, index.reshape(index.shape + (1,) * (a.ndim - 2)), axis=1)


def beam_search(step: Callable, state, *, batch: int, beam_size: int, max_length: int, alpha: float,
                bos: int, eos: int, pad: int) -> jax.Array:
    """The best finished hypothesis of every row: [B, L] int32, EOS then PAD after its end.
    `state` has leading axis N = B * K (row b's beams at b*K .. b*K + K - 1)."""
    k = beam_size

    def reorder(state, beams):                            # beams [B, K]: the parent of each new beam
        index = (jnp.arange(batch)[:, None] * k + beams).reshape(-1)
        return jax.tree.map(lambda a: jnp.take(a, index, axis=0), state)

    def body(carry):
        i, alive, alive_logp, finished, finished_score, state, token = carry
        logits, state = step(state, token, i)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch, k, -1)      # [B, K, V]
        vocab = logp.shape[-1]
        top_logp, top = jax.lax.top_k((alive_logp[..., None] + logp).reshape(batch, k * vocab), 2 * k)
        parents, tokens = top // vocab, (top % vocab).astype(jnp.int32)                  # [B, 2K]
        grown = _rows(alive, parents).at[:, :, i].set(tokens)                            # [B, 2K, L]
        ended = tokens == eos
        alive_logp, keep = jax.lax.top_k(jnp.where(ended, NEG_INF, top_logp), k)          # [B, K]
        state = reorder(state, _rows(parents, keep))
        score = jnp.where(ended, top_logp / length_penalty(i + 1, alpha), NEG_INF)
        finished_score, best = jax.lax.top_k(jnp.concatenate([finished_score, score], 1), k)
        finished = _rows(jnp.concatenate([finished, grown], 1), best)
        return (i + 1, _rows(grown, keep), alive_logp, finished, finished_score, state,
                _rows(tokens, keep).reshape(-1))

    def cond(carry):
        i, _, alive_logp, _, finished_score, *_ = carry
        best_possible = alive_logp[:, 0] / length_penalty(max_length, alpha)
        return (i < max_length) & ~jnp.all(finished_score[:, -1] > best_possible)

    sequences = jnp.full((batch, k, max_length), pad, jnp.int32)
    first = jnp.where(jnp.arange(k) == 0, 0.0, NEG_INF)                  # one live beam to start
    start = (jnp.zeros((), jnp.int32), sequences, jnp.broadcast_to(first, (batch, k)), sequences,
             jnp.full((batch, k), NEG_INF), state, jnp.full((batch * k,), bos, jnp.int32))
    _, alive, _, finished, finished_score, _, _ = jax.lax.while_loop(cond, body, start)
    return jnp.where((finished_score[:, 0] > NEG_INF / 2)[:, None], finished[:, 0], alive[:, 0])
