"""A zoo model inside flax.linen, flax.nnx and equinox modules (zoo.interop): nested under a layer
of the host framework and trained there with optax, it follows the same losses and reaches the
same params as the same composition trained on the zoo params directly."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo import interop, models

STEPS = 3


@pytest.fixture(scope="module")
def problem():
    """A small MLP on random inputs with 3 classes (4 outputs: a head of the host framework maps them)."""
    model = models.build("mlp", num_outputs=4, width=8, depth=2)
    kx, ky = jax.random.split(jax.random.PRNGKey(1))
    return model, jax.random.normal(kx, (16, 5)), jax.random.randint(ky, (16,), 0, 3)


def cross_entropy(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def train_directly(model, zoo_params, head, x, y):
    """The same composition, head(zoo(x)), trained on plain pytrees: (losses, zoo params)."""
    def loss(p):
        return cross_entropy(model.apply(p["zoo"], x) @ p["kernel"] + p["bias"], y)
    losses, params = optax_loop(loss, {"zoo": zoo_params, **head})
    return losses, params["zoo"]


def optax_loop(loss, params):
    """`STEPS` Adam steps on any pytree: (losses, params)."""
    tx = optax.adam(1e-2)
    state, losses = tx.init(params), []
    for _ in range(STEPS):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state)
        params = optax.apply_updates(params, updates)
        losses.append(float(value))
    return losses, params


def assert_same_training(losses, trained, expected_losses, expected, initial):
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-6)
    for got, want, before in zip(jax.tree.leaves(trained), jax.tree.leaves(expected), jax.tree.leaves(initial)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert not np.allclose(got, before)          # the zoo params did train


def test_linen_module_params_are_the_zoo_params_and_train_as_directly(problem):
    import flax.linen as nn
    model, x, y = problem
    zoo = interop.linen_module(model, x)
    variables = zoo.init(jax.random.PRNGKey(0), x)
    assert jax.tree.structure(variables["params"]) == jax.tree.structure(model.init(jax.random.PRNGKey(0), x))
    np.testing.assert_array_equal(zoo.apply(variables, x), model.apply(variables["params"], x))

    class Outer(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3, name="head")(interop.linen_module(model, x)(x))

    outer = Outer()
    params = outer.init(jax.random.PRNGKey(2), x)["params"]
    losses, trained = optax_loop(lambda p: cross_entropy(outer.apply({"params": p}, x), y), params)
    head = {"kernel": params["head"]["kernel"], "bias": params["head"]["bias"]}
    expected_losses, expected = train_directly(model, params["ZooLinen_0"], head, x, y)
    assert_same_training(losses, trained["ZooLinen_0"], expected_losses, expected, params["ZooLinen_0"])


def test_nnx_module_trains_as_directly(problem):
    from flax import nnx
    model, x, y = problem

    class Outer(nnx.Module):
        def __init__(self, rngs):
            self.zoo = interop.nnx_module(model, jax.random.PRNGKey(0), x)
            self.head = nnx.Linear(4, 3, rngs=rngs)

        def __call__(self, x):
            return self.head(self.zoo(x))

    outer = Outer(nnx.Rngs(2))
    graphdef, params = nnx.split(outer, nnx.Param)
    initial = jax.tree.map(lambda p: p[...], outer.zoo.params, is_leaf=lambda v: isinstance(v, nnx.Param))
    head = {"kernel": outer.head.kernel[...], "bias": outer.head.bias[...]}
    losses, trained = optax_loop(lambda p: cross_entropy(nnx.merge(graphdef, p)(x), y), params)
    nnx.update(outer, trained)
    got = jax.tree.map(lambda p: p[...], outer.zoo.params, is_leaf=lambda v: isinstance(v, nnx.Param))
    expected_losses, expected = train_directly(model, initial, head, x, y)
    assert jax.tree.structure(got) == jax.tree.structure(initial)
    assert_same_training(losses, got, expected_losses, expected, initial)


def test_equinox_module_trains_as_directly(problem):
    import equinox as eqx  # a test dependency (pyproject's test extra): missing is a failure, not a skip

    model, x, y = problem

    class Outer(eqx.Module):
        zoo: eqx.Module
        head: eqx.nn.Linear

        def __call__(self, x):
            return jax.vmap(self.head)(self.zoo(x))      # eqx layers take one example

    outer = Outer(interop.equinox_module(model, jax.random.PRNGKey(0), x), eqx.nn.Linear(4, 3, key=jax.random.PRNGKey(2)))
    head = {"kernel": outer.head.weight.T, "bias": outer.head.bias}
    losses, trained = optax_loop(lambda m: cross_entropy(m(x), y), outer)
    expected_losses, expected = train_directly(model, outer.zoo.params, head, x, y)
    assert_same_training(losses, trained.zoo.params, expected_losses, expected, outer.zoo.params)


@pytest.mark.parametrize("framework", ["linen", "nnx", "equinox"])
def test_dropout_key_reaches_the_zoo_model(framework):
    """train=True passes a dropout key through: two keys, two outputs; train=False: apply."""
    model = models.build("mlp", num_outputs=3, width=8, dropout_rate=0.5)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 5))
    if framework == "linen":
        module = interop.linen_module(model, x)
        variables = module.init(jax.random.PRNGKey(0), x)
        run = lambda k: module.apply(variables, x, train=True, rngs={"dropout": k})
        params, plain = variables["params"], module.apply(variables, x)
    else:
        build = interop.nnx_module if framework == "nnx" else interop.equinox_module
        module = build(model, jax.random.PRNGKey(0), x)
        run = lambda k: module(x, key=k, train=True)
        params, plain = model.init(jax.random.PRNGKey(0), x), module(x)
    np.testing.assert_array_equal(plain, model.apply(params, x))
    np.testing.assert_array_equal(run(jax.random.PRNGKey(5)), run(jax.random.PRNGKey(5)))
    if framework != "linen":  # linen derives its key from the rng stream
        np.testing.assert_array_equal(run(jax.random.PRNGKey(5)), model.apply(params, x, key=jax.random.PRNGKey(5), train=True))
    assert not jnp.allclose(run(jax.random.PRNGKey(5)), run(jax.random.PRNGKey(6)))


def test_a_models_state_is_flax_linen_batch_stats():
    """A BatchNorm CNN's running statistics (zoo.models.core.STATE) are linen's "batch_stats"
    collection: mutable in training, with the zoo model's new values; read in evaluation."""
    from zoo.models.core import STATE, trainable
    model = models.build("cnn", num_outputs=3, channels=(4, 4), kernel_sizes=(3,), strides=(2,), norm="batch",
                         readout="mean")
    x = jax.random.normal(jax.random.PRNGKey(2), (8, 20)) * 2 + 1
    module = interop.linen_module(model, x)
    variables = module.init(jax.random.PRNGKey(0), x)
    params = {**variables["params"], STATE: variables[STATE]}    # the zoo params pytree
    assert set(variables) == {"params", STATE}
    init = model.init(jax.random.PRNGKey(0), x)
    assert jax.tree.structure(variables["params"]) == jax.tree.structure(trainable(init))
    jax.tree.map(np.testing.assert_array_equal, variables[STATE], init[STATE])   # mean 0, variance 1
    y, updated = module.apply(variables, x, train=True, mutable=[STATE])
    want_y, want = model.apply_with_stats(params, x, train=True)
    np.testing.assert_allclose(y, want_y, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), updated[STATE], want[STATE])
    moved = {"params": variables["params"], STATE: updated[STATE]}
    np.testing.assert_allclose(module.apply(moved, x), model.apply({**params, STATE: want[STATE]}, x), atol=1e-6)


def test_a_models_state_is_flax_nnx_batch_stats():
    """The same CNN in nnx: its running statistics are nnx.BatchStat variables that a training call
    updates in place with the zoo model's new values (as flax.nnx.BatchNorm's) and evaluation
    reads; its nnx.Param leaves are the trainable params alone, so an optimizer over them never
    touches the statistics."""
    from flax import nnx

    from zoo.models.core import STATE, trainable
    model = models.build("cnn", num_outputs=3, channels=(4, 4), kernel_sizes=(3,), strides=(2,), norm="batch",
                         readout="mean")
    x = jax.random.normal(jax.random.PRNGKey(2), (8, 20)) * 2 + 1
    module = interop.nnx_module(model, jax.random.PRNGKey(0), x)
    init = model.init(jax.random.PRNGKey(0), x)
    plain = lambda state: jax.tree.map(lambda v: v[...], state, is_leaf=lambda v: isinstance(v, nnx.Variable))
    assert set(nnx.state(module, nnx.Param)) == {"params"} and set(nnx.state(module, nnx.BatchStat)) == {"batch_stats"}
    jax.tree.map(np.testing.assert_array_equal, plain(module.params), trainable(init))
    jax.tree.map(np.testing.assert_array_equal, plain(module.batch_stats), init[STATE])   # mean 0, variance 1
    np.testing.assert_allclose(module(x), model.apply(init, x), atol=1e-6)       # evaluation: the initial statistics
    want_y, want = model.apply_with_stats(init, x, train=True)
    np.testing.assert_allclose(module(x, train=True), want_y, atol=1e-6)
    moved = plain(module.batch_stats)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), moved, want[STATE])
    assert not np.allclose(moved["blocks"]["0"]["norm"]["mean"], init[STATE]["blocks"]["0"]["norm"]["mean"])
    np.testing.assert_allclose(module(x), model.apply({**init, STATE: want[STATE]}, x), atol=1e-6)


def test_a_models_state_is_equinox_state():
    """In equinox the CNN is a stateful module, as eqx.nn.BatchNorm: (module, state) as
    eqx.nn.make_with_state returns them; a training call returns the zoo model's new statistics in
    the state, evaluation reads them, and the module's array leaves are the trainable params alone.
    The stateless adapter refuses it, naming the stateful one."""
    import equinox as eqx

    from zoo.models.core import STATE, trainable
    model = models.build("cnn", num_outputs=3, channels=(4, 4), kernel_sizes=(3,), strides=(2,), norm="batch",
                         readout="mean")
    x = jax.random.normal(jax.random.PRNGKey(2), (8, 20)) * 2 + 1
    with pytest.raises(ValueError, match="equinox_module_with_state"):
        interop.equinox_module(model, jax.random.PRNGKey(0), x)
    module, state = interop.equinox_module_with_state(model, jax.random.PRNGKey(0), x)
    init = model.init(jax.random.PRNGKey(0), x)
    jax.tree.map(np.testing.assert_array_equal, module.params, trainable(init))
    assert len(jax.tree.leaves(eqx.filter(module, eqx.is_array))) == len(jax.tree.leaves(trainable(init)))
    y, state = module(x, state)
    np.testing.assert_allclose(y, model.apply(init, x), atol=1e-6)
    before = jax.tree.unflatten(*reversed(jax.tree.flatten(state)))   # equinox's way to keep an old state
    want_y, want = model.apply_with_stats(init, x, train=True)
    y, moved = module(x, state, train=True)
    np.testing.assert_allclose(y, want_y, atol=1e-6)
    np.testing.assert_allclose(module(x, moved)[0], model.apply({**init, STATE: want[STATE]}, x), atol=1e-6)
    assert not np.allclose(module(x, moved)[0], module(x, before)[0])
