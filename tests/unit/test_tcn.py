"""The TCN (Bai et al. 2018) against its definition: causal (no output sees a later input) with
exactly the receptive field 1 + 2 (k - 1)(2^L - 1), and the generated long-memory tasks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.data import memory_tasks
from zoo.errors import ConfigError
from zoo.models import build
from zoo.models.tcn import TCNConfig


@pytest.mark.parametrize("kernel_size, channels", [(2, (4, 4, 4)), (3, (4, 8))])
def test_outputs_see_exactly_the_receptive_field_and_never_the_future(kernel_size, channels):
    cfg = TCNConfig(num_outputs=2, channels=channels, kernel_size=kernel_size, readout="steps")
    field = cfg.receptive_field()
    assert field == 1 + 2 * (kernel_size - 1) * (2 ** len(channels) - 1)
    x = jax.random.normal(jax.random.PRNGKey(0), (1, field + 6, 3))
    model = build("tcn", cfg)
    params = model.init(jax.random.PRNGKey(1), x)
    s = 3
    changed = jnp.abs(model.apply(params, x.at[:, s].add(1.0)) - model.apply(params, x)).max(-1)[0]
    reach = np.flatnonzero(np.asarray(changed) > 0)
    assert reach.min() == s and reach.max() == s + field - 1   # steps s .. s + field - 1, no others


def test_last_readout_is_the_last_step_of_steps():
    x = jax.random.normal(jax.random.PRNGKey(2), (2, 12, 1))
    steps, last = (build("tcn", num_outputs=3, channels=(4, 4), kernel_size=3, readout=r) for r in ("steps", "last"))
    params = steps.init(jax.random.PRNGKey(3), x)
    np.testing.assert_allclose(last.apply(params, x), steps.apply(params, x)[:, -1], rtol=1e-6)
    with pytest.raises(ConfigError, match="one length"):
        last.apply(params, {"x": x, "lengths": jnp.array([12, 5])})


def test_adding_marks_one_value_in_each_half_and_sums_them():
    x, y = memory_tasks.adding(64, 30, np.random.default_rng(0))
    markers = x[..., 1]
    assert (markers[:, :15].sum(1) == 1).all() and (markers[:, 15:].sum(1) == 1).all()
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * markers).sum(1), rtol=1e-6)


def test_copy_memory_repeats_the_ten_digits_after_the_gap():
    x, y = memory_tasks.copy_memory(8, 50, np.random.default_rng(0))
    tokens = x.argmax(-1)
    assert x.shape == (8, 70, 10) and y.shape == (8, 70)
    assert ((tokens[:, :10] >= 1) & (tokens[:, :10] <= 8)).all() and (tokens[:, 10:59] == 0).all()
    assert (tokens[:, 59:] == 9).all() and (y[:, :60] == 0).all()
    np.testing.assert_array_equal(y[:, 60:], tokens[:, :10])


@pytest.mark.parametrize("name", ["adding_tcn", "copy_memory_tcn", "adding_tcn_t600", "copy_memory_tcn_t1000"])
def test_shipped_memory_task_tcns_see_the_whole_sequence(name):
    """A TCN whose receptive field is shorter than the sequence cannot solve either task: the
    adding problem's first marker, copy memory's digits, lie up to the whole sequence back."""
    from pathlib import Path

    from zoo import config
    cfg = config.load(Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml")
    steps = cfg.data.length + (20 if cfg.data_name == "copy_memory" else 0)
    assert cfg.model.receptive_field() >= steps


def test_init_std_draws_every_kernel_from_the_papers_normal():
    """init_std=s: every kernel (both convs of each level, the 1x1 shortcut, the head) N(0, s^2), as
    the TCN paper's code initialises; biases stay zero. Unset: LeCun normal, std 1/sqrt(fan_in)."""
    x = jnp.zeros((2, 50, 3))
    cfg = dict(num_outputs=2, channels=(64, 64), kernel_size=5)
    paper = build("tcn", TCNConfig(**cfg, init_std=0.01)).init(jax.random.PRNGKey(0), x)
    lecun = build("tcn", TCNConfig(**cfg)).init(jax.random.PRNGKey(0), x)
    kernels = [paper["levels"][0][k]["kernel"] for k in ("conv1", "conv2", "skip")] + [paper["head"]["kernel"]]
    assert all(0.008 < float(k.std()) < 0.012 for k in kernels[:2])          # 960 and 20,480 draws
    assert all(float(jnp.abs(k).max()) < 0.06 for k in kernels)
    assert float(lecun["levels"][1]["conv2"]["kernel"].std()) == pytest.approx((5 * 64) ** -0.5, rel=0.1)
    assert not jnp.any(paper["levels"][0]["conv1"]["bias"])
