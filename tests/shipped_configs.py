"""The shipped configs the tests train, and the overrides that keep each run to a few steps
(tests/integration/test_configs.py traces the others; tests/e2e/test_shipped_configs.py trains these)."""
from conftest import ROOT

from zoo import config

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
QUICK = ["train.steps=2", "train.log_every=1", "train.eval_batches=1", "train.checkpoint_every=0", "run.plots=false"]


def _trained_configs() -> set[str]:
    """The configs the smoke test trains: the first of each (model, data) pair, and every config
    with a path of its own (an example file to make, a run to fine-tune from). The others differ
    from a trained one only in sizes and options: they are built and their steps traced with
    their own shapes (jax.eval_shape), without compiling, which is most of a smoke run's time."""
    seen, trained = set(), set()
    for path in CONFIGS:
        cfg = config.load(path)
        if (cfg.model_name, cfg.data_name) not in seen or cfg.train.init_from or config.example_command(path):
            trained.add(path.stem)
        seen.add((cfg.model_name, cfg.data_name))
    return trained


TRAINED = _trained_configs()
