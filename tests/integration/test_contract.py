"""The model contract (DESIGN.md section 1), checked for every name in the registry:
init/apply shapes, jit(apply) == apply, finite non-zero gradients for every parameter, and a
few optax steps overfitting a tiny batch."""
import chex
import jax
import jax.numpy as jnp
import optax
import pytest
from model_cases import BATCH, CASES, experiment

from zoo import experiment as ex
from zoo.models import REGISTRY, Model, build


def test_registry_names_each_family_module_entry_and_no_other():
    """NAMES (what `zoo list models` shows without importing a family) and the family modules'
    MODELS agree: every module of zoo.models that defines MODELS has each name listed there."""
    import importlib
    import pkgutil

    import zoo.models
    from zoo.models import NAMES
    found = {}
    for info in pkgutil.iter_modules(zoo.models.__path__):
        module = importlib.import_module(f"zoo.models.{info.name}")
        found.update({name: info.name for name in getattr(module, "MODELS", {})})
    assert found == {name: module for name, (module, _) in NAMES.items()}


def test_every_registered_model_has_a_contract_case():
    assert set(REGISTRY) == set(CASES), "add a case for each new model to CASES"


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    exp = experiment(request.param)
    batch = jax.tree.map(jnp.asarray, exp.dataset.train_batch(0, 0, BATCH))
    params = exp.model.init(jax.random.PRNGKey(0), batch["x"])
    return request.param, exp, batch, params


def outputs(model: Model, params, x, **kw):
    return model.apply(params, x, **kw)


@pytest.fixture(scope="module")
def eager(case):
    """The case's model applied op by op, once per case for every test that reads it (an ODE
    family's eager solve takes seconds)."""
    _, exp, batch, params = case
    return outputs(exp.model, params, batch["x"])


def test_build_by_name_and_by_config(case, eager):
    name, exp, batch, params = case
    again = build(exp.cfg.model_name, exp.cfg.model)
    chex.assert_trees_all_equal(outputs(again, params, batch["x"]), eager)
    assert isinstance(exp.model, Model)


def test_params_are_named_float32_arrays(case):
    _, _, _, params = case
    assert isinstance(params, dict)
    chex.assert_tree_has_only_ndarrays(params)
    chex.assert_type(jax.tree.leaves(params), jnp.float32)


def test_output_shape_follows_targets(case, eager):
    _, exp, batch, params = case
    y = eager
    y = y["y"] if isinstance(y, dict) else y          # a latent ODE's {"y", "kl"}
    target = batch["y"]["values"] if exp.dataset.task == "irregular" else batch["y"]
    # one score per class or token
    scores = {"classification": "num_outputs", "language_model": "num_outputs", "translation": "vocab_size"}
    classes = (exp.dataset.model_defaults[scores[exp.dataset.task]],) if exp.dataset.task in scores else ()
    assert y.shape == target.shape + classes, (exp.dataset.task, y.shape, target.shape)
    chex.assert_tree_all_finite(y)


def test_jit_equals_no_jit(case, eager):
    _, exp, batch, params = case
    jitted = jax.jit(lambda p, x: outputs(exp.model, p, x))(params, batch["x"])
    chex.assert_trees_all_close(eager, jitted, rtol=1e-5, atol=1e-5)


def test_every_parameter_gets_a_finite_nonzero_gradient(case):
    _, exp, batch, params = case

    def loss(p):
        sums, _ = ex.loss_sums(exp, p, batch, jax.random.PRNGKey(1), train=True)
        return sums["loss"] / sums["count"]

    grads = jax.jit(jax.grad(loss))(params)
    chex.assert_trees_all_equal_shapes_and_dtypes(grads, params)
    chex.assert_tree_all_finite(grads)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert float(jnp.abs(g).max()) > 0, f"{jax.tree_util.keystr(path)} gets no gradient"


def test_a_few_adam_steps_overfit_a_tiny_batch(case):
    _, exp, batch, params = case
    tx = optax.adam(1e-2)

    def loss(p):
        sums, _ = ex.loss_sums(exp, p, batch, None, train=False)
        return sums["loss"] / sums["count"]

    @jax.jit
    def step(p, s):
        value, g = jax.value_and_grad(loss)(p)
        updates, s = tx.update(g, s, p)
        return optax.apply_updates(p, updates), s, value

    state = tx.init(params)
    _, _, first = step(params, state)
    for _ in range(100):
        params, state, _ = step(params, state)
    _, _, last = step(params, state)  # the loss at the parameters after 100 steps (no eager re-evaluation)
    assert float(last) < 0.5 * float(first)
