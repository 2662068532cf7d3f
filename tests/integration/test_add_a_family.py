"""A family plugs in by its module alone (README, "Add a family"): a toy family defined in this
file, registered from outside zoo, trains through the one trainer, reloads, is probed for the
symmetry its entry names and exports, with no list of model names edited anywhere in zoo."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import config, export, models, probes, train
from zoo.experiment import load_run
from zoo.models import ModelEntry
from zoo.models.core import Model


# --- the family: softmax regression on a sequence's mean and its circular differences ----------
@dataclasses.dataclass(frozen=True)
class ToyConfig:
    num_outputs: int | None = None     # filled from the dataset (model_defaults)


def build(name: str, cfg: ToyConfig) -> Model:
    """y = W [mean_t x_t, mean_t |x_t - x_{t-1}|] + b: both features ignore circular shifts."""
    def features(x):                                   # x [B, T] -> [B, 2]
        step = jnp.abs(x - jnp.roll(x, 1, axis=1))
        return jnp.stack([x.mean(axis=1), step.mean(axis=1)], axis=-1)

    def init(key, x):
        return {"kernel": 0.01 * jax.random.normal(key, (2, cfg.num_outputs)), "bias": jnp.zeros(cfg.num_outputs)}

    def apply(params, x, *, key=None, train=False):
        return features(x) @ params["kernel"] + params["bias"]

    return Model(init, apply, lambda *a, **k: (apply(*a, **k), {}))


def exact_shifts(cfg: ToyConfig, group: str, elements: list) -> tuple[str, np.ndarray]:
    return ("every shift" if group == "shift" else ""), np.full(len(elements), group == "shift")


@pytest.fixture(scope="module")
def toy():
    models.register("toy_shift", ModelEntry(ToyConfig, build, symmetry="shift", exact_symmetry=exact_shifts),
                    "a toy family registered by a test: shift-invariant softmax regression")
    yield "toy_shift"
    del models.NAMES["toy_shift"], models.REGISTERED["toy_shift"]


def test_a_family_registered_from_outside_trains_reloads_is_probed_and_exports(toy, tmp_path):
    assert "toy_shift" in models.REGISTRY and "shift-invariant" in models.description(toy)
    cfg = config.load(None, [f"model.name={toy}", "data.name=mnist1d", "train.steps=60", "train.batch_size=100",
                             "optimizer.learning_rate=0.05", f"run.dir={tmp_path}", "run.name=toy", "run.plots=false"])
    summary = train.fit(cfg)
    assert summary["model"] == toy and summary["eval_accuracy"] > 0.15        # chance: 0.10
    run = load_run(tmp_path / "toy")
    symmetry = probes.run("symmetry", run)                                  # the group from its entry
    assert symmetry["group"] == "shift" and symmetry["max_error_exact"] < 1e-5
    written = export.write(run, tmp_path / "toy.jaxexport")
    restored = export.load(written["artifact"])
    x = np.asarray(run.exp.dataset.test["x"][:4])
    np.testing.assert_allclose(restored.call(x), run.model.apply(run.params, x), rtol=1e-5, atol=1e-6)


def test_a_registered_name_cannot_replace_a_family(toy):
    with pytest.raises(ValueError, match="already registered"):
        models.register("cnn", ModelEntry(ToyConfig, build), "another cnn")
