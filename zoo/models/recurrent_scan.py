"""The fused recurrent scan: every direction of a layer in one `lax.scan`, with a hand-written
backward pass. Same function as the scan path in zoo.models.recurrent (tested against it).

Axis legend: T time, K directions, B batch, H hidden units, G gate pre-activations.

What it does, and why (XLA CPU; measured with bench/bench_recurrent.py, history in bench/README.md):
- Gate-wise arrays. Inside the loop every gate has its own [K, B, H] buffers: u_k = h W_hh_k
  is one small matmul per gate, and the input side a_k is a separate array. XLA CPU
  vectorises an elementwise fusion badly when it reads several slices of one buffer (the
  LSTM gate math on slices of one [B, 4H] array ran ~5x slower than on four [B, H] arrays),
  and this alone made the LSTM forward ~1.4x faster.
- The input side x W_ih + b of every gate and direction is one matmul before the loop.
- Both directions advance in the same loop step (a batched [K, B, H] x [K, H, H] matmul), so
  a bidirectional layer runs T steps, not 2T.
- Backward (custom VJP): autodiff of a scan accumulates dW_hh += h_{t-1}^T du_t inside the
  loop, a second small matmul per step. Here the loop only carries d h_{t-1} = du_t W_hh^T
  and recomputes the gate math from the saved (carry_{t-1}, a_t, u_t); dW_hh is one
  [H, T*B] x [T*B, H] matmul per gate after the loop, and d(x W_ih + b) flows back through
  the hoisted projection by ordinary autodiff.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _hidden(carry):
    return carry[0] if isinstance(carry, tuple) else carry


def _add_hidden(carry, dh):
    return (carry[0] + dh, *carry[1:]) if isinstance(carry, tuple) else carry + dh


def _matmul(h, w):
    """[K, B, H] x [K, H, H'] -> [K, B, H']; K = 1 stays a plain matmul."""
    if h.shape[0] == 1:
        return (h[0] @ w[0])[None]
    return jnp.einsum("kbh,khg->kbg", h, w)


def _matmul_t(du, w):
    """[K, B, H'] x [K, H, H']^T -> [K, B, H]."""
    if du.shape[0] == 1:
        return (du[0] @ w[0].T)[None]
    return jnp.einsum("kbg,khg->kbh", du, w)


def _recur(w, b_h, h):
    """Per gate: u_k = h W_hh_k + b_h_k, a tuple of [K, B, H]."""
    u = tuple(_matmul(h, w_k.astype(h.dtype)) for w_k in w)
    if b_h is None:
        return u
    return tuple(u_k + b_k[:, None, :].astype(h.dtype) for u_k, b_k in zip(u, b_h))


def _forward(step, w, b_h, a, carry0, mask, unroll):
    def body(carry, inputs):
        a_t, m_t = inputs
        u_t = _recur(w, b_h, _hidden(carry))
        new, y = step(carry, a_t, u_t, m_t)
        return new, (y, carry, u_t)

    carry, (ys, carries, us) = jax.lax.scan(body, carry0, (a, mask), unroll=unroll)
    return (carry, ys), (carries, us)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 6))
def fused_scan(step, w, b_h, a, carry0, mask, unroll):
    """Scan `step(carry, a_t, u_t, m_t) -> (carry, y_t)` with u_t = h_{t-1} W_hh + b_h per gate.

    Gate-wise tuples: w of [K, H, H], b_h of [K, H] (or None), a of [T, K, B, H];
    carry0: [K, B, H] leaves; mask: [T, K, B, 1] bool or None.
    Returns (final carry, ys: [T, K, B, H]).
    """
    return _forward(step, w, b_h, a, carry0, mask, unroll)[0]


def _fused_fwd(step, w, b_h, a, carry0, mask, unroll):
    out, (carries, us) = _forward(step, w, b_h, a, carry0, mask, unroll)
    return out, (w, b_h, a, mask, carries, us)


def _fused_bwd(step, unroll, residuals, cotangents):
    w, b_h, a, mask, carries, us = residuals
    d_carry, d_ys = cotangents

    def body(d_carry, inputs):
        carry_prev, a_t, u_t, m_t, dy_t = inputs
        _, pull = jax.vjp(lambda c, a_, u_: step(c, a_, u_, m_t), carry_prev, a_t, u_t)
        d_prev, da_t, du_t = pull((d_carry, dy_t))
        dh = sum(_matmul_t(du_k, w_k.astype(du_k.dtype)) for du_k, w_k in zip(du_t, w))
        return _add_hidden(d_prev, dh), (da_t, du_t)

    d_carry0, (da, du) = jax.lax.scan(body, d_carry, (carries, a, us, mask, d_ys),
                                      reverse=True, unroll=unroll)
    h_prev = _hidden(carries)
    dw = tuple(jnp.einsum("tkbh,tkbg->khg", h_prev, du_k).astype(w_k.dtype) for du_k, w_k in zip(du, w))
    db_h = None if b_h is None else tuple(du_k.sum((0, 2)).astype(b_k.dtype) for du_k, b_k in zip(du, b_h))
    return dw, db_h, da, d_carry0, None


fused_scan.defvjp(_fused_fwd, _fused_bwd)


def _stack_tree(trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _time_reversed(per_direction):
    """Stack K arrays [T, ...] into [T, K, ...], direction 1 reversed in time."""
    return jnp.stack([v[::-1] if k == 1 else v for k, v in enumerate(per_direction)], 1)


def _affine(xs, w, b):
    """xs [T, B, D] -> xs w + b: [T, B, H]."""
    return xs @ w.astype(xs.dtype) + b[None, None, :].astype(xs.dtype)


def directions_layer(step, num_gates, dirs, xs, carries, mask, *, recurrent_bias, unroll=1):
    """All K directions of one layer in one scan; direction 1 runs backwards in time.

    dirs: K cell-parameter dicts; xs: [T, B, D]; carries: K carries [B, H];
    mask: [T, B, 1] bool or None. Returns (K final carries, ys: [T, B, K*H]).
    """
    k = len(dirs)
    split = functools.partial(jnp.split, indices_or_sections=num_gates, axis=-1)
    by_gate = lambda name: list(zip(*[split(p[name]) for p in dirs]))  # noqa: E731  [gate][direction]
    # One matmul for every gate and direction, then per-gate copies the loop reads whole.
    w_in = jnp.concatenate([p["W_ih"] for p in dirs], -1)
    b_in = jnp.concatenate([p["b"] for p in dirs], -1)
    a_all = jnp.split(_affine(xs, w_in, b_in), k * num_gates, axis=-1)
    a = tuple(_time_reversed(a_all[d * num_gates + g] for d in range(k)) for g in range(num_gates))
    w_hh = tuple(jnp.stack(ws) for ws in by_gate("W_hh"))
    b_h = None
    if recurrent_bias(dirs[0]) is not None:
        b_h = tuple(jnp.stack(bs) for bs in zip(*[split(recurrent_bias(p)) for p in dirs]))
    masks = None if mask is None else _time_reversed([mask] * k)
    final, ys = fused_scan(step, w_hh, b_h, a, _stack_tree(carries), masks, unroll)
    outs = [ys[:, 0]] + ([ys[::-1, 1]] if k == 2 else [])
    finals = [jax.tree.map(lambda leaf, d=d: leaf[d], final) for d in range(k)]
    return finals, jnp.concatenate(outs, -1)
