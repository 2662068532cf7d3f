"""Sequence to sequence: the translation data, the label-smoothed task, the encoder-decoder's
masks, and decoding: cached equals recomputed, beam search finds the exhaustive best."""
from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo.data.translation as data
import zoo.models as M
from zoo.errors import ConfigError
from zoo.models import decoding
from zoo.models import seq2seq as S
from zoo.tasks import LABEL_SMOOTHING, translation


@pytest.fixture(scope="module")
def numbers():
    return data.load(data.TranslationConfig(max_number=199, test_fraction=0.2))


# ----------------------------------------------------------------------------- data
def test_split_by_number_and_reordering(numbers):
    train_sources, _ = numbers.texts("train")
    test_sources, test_targets = numbers.texts("test")
    assert len(test_sources) == 40 and not set(test_sources) & set(train_sources)
    pairs = dict(zip(test_sources + train_sources, test_targets + numbers.texts("train")[1]))
    assert pairs["twenty-three"] == "dreiundzwanzig"        # units before tens: the reordering to learn


def test_batches_are_shifted_pairs(numbers):
    batch = numbers.train_batch(0, 0, 4)
    x, y = batch["x"], batch["y"]
    assert x["target"][:, 0].tolist() == [data.BOS] * 4
    np.testing.assert_array_equal(x["target"][:, 1:], y[:, :-1])     # y is the input one step ahead
    assert (x["source"] == data.EOS).sum(1).tolist() == [1] * 4 and (y == data.EOS).sum(1).tolist() == [1] * 4


def test_encode_decode_round_trip(numbers):
    ids = data.encode(["vierzig", "zwölf?"], numbers.vocab, 10, eos=True)
    assert data.decode(ids[0], numbers.vocab) == "vierzig"
    assert ids[1, 5] == data.UNK and data.decode(ids[1], numbers.vocab) == "zwölf"


def test_unknown_language_is_a_one_line_error():
    with pytest.raises(ConfigError, match="data.target='xx' is not a num2words language"):
        data.load(data.TranslationConfig(target="xx"))


# ----------------------------------------------------------------------------- task
def test_uniform_logits_cost_log_v_and_padding_is_no_token():
    y = jnp.array([[5, 6, data.EOS, data.PAD], [7, data.EOS, data.PAD, data.PAD]])
    batch = {"y": y, "mask": jnp.array([1.0, 0.0])}
    sums = translation(jnp.zeros((2, 4, 10)), batch)
    assert float(sums["loss"]) == pytest.approx(math.log(10)) and float(sums["count"]) == 1.0
    right = jax.nn.one_hot(y, 10) * 50.0
    wrong_padding = right.at[:, :, 0].set(jnp.where(y == data.PAD, 0.0, 0.0)).at[0, 3].set(jax.nn.one_hot(9, 10) * 50)
    assert float(translation(wrong_padding, batch)["exact_match"]) == 1.0      # a PAD position is never scored
    eps = LABEL_SMOOTHING
    smoothed = -(1 - eps + eps / 10) * jax.nn.log_softmax(right[0, 0])[5] - eps / 10 * jax.nn.log_softmax(right[0, 0]).sum() \
        + eps / 10 * jax.nn.log_softmax(right[0, 0])[5]
    assert float(translation(right, batch)["loss"]) == pytest.approx(float(smoothed), rel=1e-4)


# ----------------------------------------------------------------------------- the model
def model(numbers, **kw):
    cfg = S.Seq2SeqConfig(vocab_size=len(numbers.vocab), num_layers=2, num_heads=2, d_model=16,
                          max_decode_length=12, **kw)
    batch = numbers.train_batch(0, 0, 3)
    params = M.build("seq2seq", cfg).init(jax.random.key(0), batch["x"])
    # larger weights than the initialisation's, so that decoding depends on every input
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree.unflatten(tree, [a + 0.3 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
    return cfg, params, batch


def test_source_padding_is_never_read(numbers):
    cfg, params, batch = model(numbers)                   # sinusoidal positions: any length fits
    apply = jax.jit(M.build("seq2seq", cfg).apply)
    x = {k: jnp.asarray(v) for k, v in batch["x"].items()}
    longer = {**x, "source": jnp.pad(x["source"], ((0, 0), (0, 5)))}
    np.testing.assert_allclose(apply(params, x), apply(params, longer), atol=1e-5)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_the_decoder_never_reads_future_targets(numbers, positions):
    cfg, params, batch = model(numbers, positions=positions)
    apply = jax.jit(M.build("seq2seq", cfg).apply)
    x = {k: jnp.asarray(v) for k, v in batch["x"].items()}
    a, b = apply(params, x), apply(params, {**x, "target": x["target"].at[:, 6:].set(9)})
    np.testing.assert_allclose(a[:, :6], b[:, :6], atol=1e-5)
    assert not np.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("beam_size", [1, 4])
def test_cached_decoding_equals_recomputation(numbers, beam_size):
    cfg, params, batch = model(numbers)
    cached = S.translate(cfg, params, batch["x"]["source"], beam_size=beam_size)
    recomputed = S.translate(cfg, params, batch["x"]["source"], beam_size=beam_size, cache=False)
    np.testing.assert_array_equal(cached, recomputed)
    assert len({tuple(row) for row in np.asarray(cached)}) > 1     # the outputs depend on the source


def test_greedy_is_the_argmax_of_the_full_model(numbers):
    cfg, params, batch = model(numbers)
    source = batch["x"]["source"]
    out = np.asarray(S.translate(cfg, params, source, beam_size=1))
    apply = jax.jit(M.build("seq2seq", cfg).apply)   # one compile for the 11 calls
    target = np.full((3, 12), data.PAD, np.int32)
    target[:, 0] = data.BOS
    for i in range(11):
        target[:, i + 1] = np.argmax(apply(params, {"source": source, "target": jnp.asarray(target)})[:, i], -1)
    for row, expected in zip(out, target[:, 1:]):
        end = list(expected).index(data.EOS) + 1 if data.EOS in expected else 11
        assert list(row[:end]) == list(expected[:end])


# ----------------------------------------------------------------------------- decoding, closed form
def markov_step(table):
    """A model whose next-token scores depend on the last token only: logits = table[token]."""
    def step(state, token, i):
        return table[token], state
    return step


def exhaustive_best(table, length, alpha, bos=1, eos=2):
    """The highest log p(Y) / lp(|Y|) over every sequence ending in EOS within `length` tokens."""
    logp = np.asarray(jax.nn.log_softmax(table))
    best, best_score = None, -np.inf
    for n in range(1, length + 1):
        for body in itertools.product([t for t in range(table.shape[0]) if t != eos], repeat=n - 1):
            seq, prev, total = [*body, eos], bos, 0.0
            for t in seq:
                total, prev = total + logp[prev, t], t
            score = total / decoding.length_penalty(n, alpha)
            if score > best_score:
                best, best_score = seq, score
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_with_a_wide_beam_finds_the_exhaustive_best(seed):
    table = 2.0 * jax.random.normal(jax.random.key(seed), (5, 5))
    out = decoding.beam_search(markov_step(table), jnp.zeros(2 * 25), batch=2, beam_size=25, max_length=4,
                               alpha=0.6, bos=1, eos=2, pad=0)
    best = exhaustive_best(table, 4, 0.6)
    assert list(np.asarray(out[0])[:len(best)]) == best and list(np.asarray(out[1])[:len(best)]) == best


def test_greedy_follows_the_argmax_chain():
    table = jnp.eye(5)[jnp.array([0, 3, 2, 4, 2])] * 5.0       # BOS -> 3 -> 4 -> EOS
    out = decoding.greedy(markov_step(table), jnp.zeros(1), batch=1, max_length=6, bos=1, eos=2, pad=0)
    assert out[0].tolist() == [3, 4, 2, 0, 0, 0]


# ----------------------------------------------------------------------------- the attentional RNN
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_bahdanau_attention_reads_real_source_positions_only(numbers, kind):
    from zoo.models import recurrent_seq2seq as RS
    cfg = RS.RecurrentSeq2SeqConfig(vocab_size=len(numbers.vocab), embed_dim=8, hidden_size=8, attention_size=8)
    batch = numbers.train_batch(0, 0, 3)
    params = M.build(f"{kind}_seq2seq", cfg).init(jax.random.key(0), batch["x"])
    _, alpha = RS.forward(kind, params, jnp.asarray(batch["x"]["source"]), jnp.asarray(batch["x"]["target"]))
    real = batch["x"]["source"] != data.PAD
    np.testing.assert_allclose(alpha.sum(-1), 1.0, rtol=1e-5)
    assert float(jnp.abs(alpha * ~real[:, None, :]).max()) == 0.0


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_recurrent_greedy_is_the_argmax_of_the_teacher_forced_model(numbers, kind):
    from zoo.models import recurrent_seq2seq as RS
    cfg = RS.RecurrentSeq2SeqConfig(vocab_size=len(numbers.vocab), embed_dim=8, hidden_size=16,
                                    attention_size=8, max_decode_length=10)
    batch = numbers.train_batch(0, 0, 8)
    params = M.build(f"{kind}_seq2seq", cfg).init(jax.random.key(2), batch["x"])
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(3), len(leaves))            # outputs that depend on the source
    params = jax.tree.unflatten(tree, [a + 1.0 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
    source = jnp.asarray(batch["x"]["source"])
    out = np.asarray(RS.translate(kind, cfg, params, source, beam_size=1))
    teacher_forced = jax.jit(lambda target: RS.forward(kind, params, source, target)[0])   # one compile, 10 calls
    target = np.full((8, 11), data.PAD, np.int32)
    target[:, 0] = data.BOS
    for i in range(10):
        target[:, i + 1] = np.argmax(teacher_forced(jnp.asarray(target))[:, i], -1)
    for row, expected in zip(out, target[:, 1:]):
        end = list(expected).index(data.EOS) + 1 if data.EOS in expected else 10
        assert list(row[:end]) == list(expected[:end])
    assert len({tuple(row) for row in out}) > 1


# ----------------------------------------------------------------------------- scores
def test_scores_of_perfect_and_wrong_translations():
    from zoo.translating import scores
    perfect = scores(["vierzig", "zwei"], ["vierzig", "zwei"])
    assert perfect == {"exact_match": 1.0, "bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0)}
    half = scores(["vierzig", "xyz"], ["vierzig", "zwei"])
    assert half["exact_match"] == 0.5 and 0 < half["bleu"] < 100 and 0 < half["chrf"] < 100
