"""Recurrent family: cells against flax.linen and torch.nn with copied weights, masks, state
passing, fused path == reference path, language model generation, gradient-flow ordering."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.models import recurrent as R
from zoo.models import recurrent_lm as LM

KINDS = ["rnn", "lstm", "gru"]
ATOL = 1e-5


def _x(shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _lengths():
    return jnp.array([7, 3, 1, 5], jnp.int32)


# ----------------------------------------------------------------------------- flax.linen
def _from_flax(kind, p):
    cat = lambda names, what="kernel": jnp.concatenate([p[n][what] for n in names], -1)  # noqa: E731
    if kind == "rnn":
        return {"W_ih": p["i"]["kernel"], "W_hh": p["h"]["kernel"], "b": p["i"]["bias"]}
    if kind == "lstm":
        return {"W_ih": cat(["ii", "if", "ig", "io"]), "W_hh": cat(["hi", "hf", "hg", "ho"]),
                "b": cat(["hi", "hf", "hg", "ho"], "bias")}
    return {"W_ih": cat(["ir", "iz", "in"]), "W_hh": cat(["hr", "hz", "hn"]),
            "b": cat(["ir", "iz", "in"], "bias"), "b_hn": p["hn"]["bias"]}


@pytest.mark.crosscheck
@pytest.mark.parametrize("kind", KINDS)
def test_cell_matches_flax(kind):
    nn = pytest.importorskip("flax.linen")
    b, d, h = 4, 3, 5
    x, h0, c0 = _x((b, d), 0), _x((b, h), 1), _x((b, h), 2)
    flax_cell = {"rnn": nn.SimpleCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind](features=h)
    flax_carry = (c0, h0) if kind == "lstm" else h0          # flax's LSTM carry is (c, h)
    variables = flax_cell.init(jax.random.key(3), flax_carry, x)
    variables = jax.tree.map(lambda v: v + 0.1 * _x(v.shape, 4), variables)  # non-zero biases
    want_carry, want_y = flax_cell.apply(variables, flax_carry, x)
    carry, y = R.make_cell(kind)(_from_flax(kind, variables["params"]), (h0, c0) if kind == "lstm" else h0, x)
    np.testing.assert_allclose(y, want_y, atol=ATOL)
    if kind == "lstm":
        np.testing.assert_allclose(carry[1], want_carry[0], atol=ATOL)


# ----------------------------------------------------------------------------- torch.nn
def _from_torch(kind, module, num_layers, bidirectional):
    layers = []
    for i in range(num_layers):
        layer = {}
        for name, suffix in [("fwd", ""), ("bwd", "_reverse")][:1 + bidirectional]:
            get = lambda w, i=i, suffix=suffix: jnp.asarray(getattr(module, f"{w}_l{i}{suffix}").detach().numpy())
            b_ih, b_hh = get("bias_ih"), get("bias_hh")
            cell = {"W_ih": get("weight_ih").T, "W_hh": get("weight_hh").T, "b": b_ih + b_hh}
            if kind == "gru":
                h = b_hh.shape[0] // 3
                cell["b"] = b_ih + b_hh.at[2 * h:].set(0.0)
                cell["b_hn"] = b_hh[2 * h:]
            layer[name] = cell
        layers.append(layer)
    return layers


def _torch_module(torch, kind, d, h, num_layers, bidirectional):
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    torch.manual_seed(0)
    return cls(d, h, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)


@pytest.mark.crosscheck
@pytest.mark.parametrize("kind, impl", [("rnn", "scan"), ("lstm", "scan"), ("gru", "scan"),
                                        ("lstm", "fused"), ("gru", "fused")])
def test_stack_matches_torch(kind, impl):
    torch = pytest.importorskip("torch")
    b, t, d, h, n = 4, 7, 3, 5, 2
    module = _torch_module(torch, kind, d, h, n, True)
    x = _x((b, t, d))
    with torch.no_grad():
        want_y, want_state = module(torch.tensor(np.asarray(x)))
    ys, final = R.stack(kind, _from_torch(kind, module, n, True), x, impl=impl)
    np.testing.assert_allclose(ys, want_y.numpy(), atol=ATOL)
    want_h = want_state[0] if kind == "lstm" else want_state
    got_h = jnp.stack([R.hidden(c) for layer in final for c in layer])
    np.testing.assert_allclose(got_h, want_h.numpy(), atol=ATOL)
    if kind == "lstm":
        got_c = jnp.stack([c[1] for layer in final for c in layer])
        np.testing.assert_allclose(got_c, want_state[1].numpy(), atol=ATOL)


@pytest.mark.crosscheck
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_lengths_match_torch_packed_sequences(kind):
    torch = pytest.importorskip("torch")
    b, t, d, h = 4, 7, 3, 5
    module = _torch_module(torch, kind, d, h, 1, True)
    x, lengths = _x((b, t, d)), _lengths()
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(np.asarray(x)),
                                                     torch.tensor(np.asarray(lengths)),
                                                     batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, _ = module(packed)
    want, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=t)
    ys, _ = R.stack(kind, _from_torch(kind, module, 1, True), x, lengths=lengths)
    np.testing.assert_allclose(ys, want.numpy(), atol=ATOL)


# ----------------------------------------------------------------------------- masks and state
@pytest.mark.parametrize("kind", KINDS)
def test_padding_never_changes_real_steps(kind):
    layers = R.stack_init(jax.random.key(0), kind, 3, 5, 2, True)
    x, lengths = _x((4, 7, 3)), _lengths()
    real = (jnp.arange(7)[None, :] < lengths[:, None])[..., None]
    noisy = jnp.where(real, x, 100.0 * _x(x.shape, 9))
    run = jax.jit(lambda x: R.stack(kind, layers, x, lengths=lengths))
    (ys, final), (ys2, final2) = run(x), run(noisy)
    np.testing.assert_allclose(ys, ys2, atol=ATOL)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=ATOL), final, final2)
    assert jnp.all(jnp.where(real, 0.0, ys) == 0.0)
    row, _ = R.stack(kind, layers, x[1:2, :3])                # example 1 alone, unpadded
    np.testing.assert_allclose(ys[1:2, :3], row, atol=ATOL)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_state_passing_continues_a_sequence(kind):
    layers = R.stack_init(jax.random.key(0), kind, 3, 5, 2, False)
    x = _x((2, 9, 3))
    whole, final = R.stack(kind, layers, x)
    first, state = R.stack(kind, layers, x[:, :4])
    second, final2 = R.stack(kind, layers, x[:, 4:], initial_state=state)
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole, atol=ATOL)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=ATOL), final, final2)


@pytest.mark.parametrize("kind, bidirectional", [("rnn", True), ("lstm", False), ("lstm", True), ("gru", True)])
def test_fused_path_matches_reference_with_gradients(kind, bidirectional):
    layers = R.stack_init(jax.random.key(0), kind, 3, 5, 2, bidirectional)
    x, lengths = _x((4, 7, 3)), _lengths()
    state = [[R.zero_carry(kind, 4, 5)] * (1 + bidirectional)] * 2
    state = jax.tree.map(lambda z: z + _x(z.shape, 5), state)

    def loss(layers, x, state, impl):
        ys, final = R.stack(kind, layers, x, lengths=lengths, initial_state=state, impl=impl)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(final))

    value_and_grad = jax.jit(jax.value_and_grad(loss, (0, 1, 2)), static_argnums=3)
    want = value_and_grad(layers, x, state, "scan")
    got = value_and_grad(layers, x, state, "fused")
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5), got, want)


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("name, readout", [("rnn", "flatten"), ("lstm", "last"), ("gru", "mean")])
def test_classifier_shapes_jit_and_dropout(name, readout):
    from zoo.models import build
    model = build(name, num_outputs=10, hidden_size=6, num_layers=2, bidirectional=True,
                  readout=readout, dropout_rate=0.5)
    x = _x((5, 40, 1))
    params = model.init(jax.random.key(0), x)
    y = model.apply(params, x)
    assert y.shape == (5, 10)
    np.testing.assert_allclose(jax.jit(model.apply)(params, x), y, atol=ATOL)
    key = jax.random.key(1)
    assert not np.allclose(model.apply(params, x, key=key, train=True), y)
    lengths = jnp.array([40, 10, 1, 39, 20])
    assert model.apply(params, {"x": x, "lengths": lengths}).shape == (5, 10)


def test_lm_generate_greedy_matches_apply():
    from zoo.models import build
    cfg = LM.RecurrentLMConfig(vocab_size=11, embed_dim=4, hidden_size=8, num_layers=2)
    model = build("lstm_lm", cfg)
    prompt = jnp.array([[1, 2, 3], [4, 5, 6]], jnp.int32)
    params = model.init(jax.random.key(0), prompt)
    generate = jax.jit(functools.partial(LM.generate, "lstm"), static_argnums=0,
                       static_argnames=("steps", "temperature", "top_k"))
    out = generate(cfg, params, prompt, steps=5, key=jax.random.key(1), temperature=0.0)
    assert out.shape == (2, 8) and out.dtype == jnp.int32
    np.testing.assert_array_equal(out[:, :3], prompt)
    logits = jax.jit(model.apply)(params, out[:, :-1])
    np.testing.assert_array_equal(jnp.argmax(logits[:, 2:], -1), out[:, 3:])
    sampled = generate(cfg, params, prompt, steps=5, key=jax.random.key(1), top_k=3)
    assert sampled.shape == (2, 8) and int(sampled.max()) < 11


def test_steps_readout_puts_the_head_on_every_step_and_its_last_is_the_last_readout():
    """readout=steps (copy memory's per-step classes): [B, T, K]; without lengths its last step
    is what readout=last gives, as the final carry is the last step's output."""
    from zoo.models import build
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 3))
    steps, last = (build("gru", num_outputs=4, hidden_size=5, readout=r) for r in ("steps", "last"))
    params = steps.init(jax.random.PRNGKey(1), x)
    y = steps.apply(params, x)
    assert y.shape == (2, 7, 4)
    np.testing.assert_allclose(y[:, -1], last.apply(params, x), rtol=1e-5, atol=1e-6)
