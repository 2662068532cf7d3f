"""A dataset whose training batch is the same at every step (a whole graph) is placed on the
devices once; any other is placed afresh at every step."""
from zoo import config
from zoo.program import Program
from zoo.replicas import Stacked


def program(cls, name, *overrides):
    return cls.build(config.load(config.config_path(name), ["train.steps=2", *overrides]))


def test_a_whole_graph_is_placed_once_for_one_run_and_for_replicas():
    for p in (program(Program, "karate_gcn"), program(Stacked, "karate_gcn", "train.seeds=2")):
        assert p.same_every_step()
        assert p.train_batch(0) is p.train_batch(7)
        assert p.train_batches(0, 4) is p.train_batches(8, 4)
        assert p.train_batches(0, 4) is not p.train_batches(0, 2)


def test_a_batch_dataset_is_placed_at_every_step():
    p = program(Program, "digits_cnn")
    assert not p.same_every_step()
    assert p.train_batch(0) is not p.train_batch(1)
