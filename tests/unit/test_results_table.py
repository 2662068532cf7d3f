"""`zoo reproduce`'s table names the accelerator of a row that did not train on the CPU, and its
default config list leaves the *_long ones out."""
import argparse

from zoo.commands import reproduce

ROW = {"config": "c", "metric": "eval_accuracy", "mean": 0.9, "std": 0.01, "seeds": 3, "values": [0.9] * 3,
       "published": None, "source": "s", "wall_time_s": 12.34, "steps": 100, "params": 1000}


def test_a_row_trained_on_an_accelerator_names_it_beside_its_wall_time():
    lines = reproduce.table([ROW | {"device": "NVIDIA H200"}, ROW | {"device": "cpu"}, ROW]).splitlines()
    assert lines[2].endswith("| 1,000 | 12.3 on an NVIDIA H200 | s |")
    assert lines[3] == lines[4] and lines[3].endswith("| 1,000 | 12.3 | s |")   # older rows: the CPU


def test_every_config_means_every_one_but_the_long_ones_unless_asked():
    shipped = ["a", "b_long", "c"]
    parser = argparse.ArgumentParser()
    reproduce.add_parser(parser.add_subparsers())

    def parse(*args):
        return parser.parse_args(["reproduce", *args])

    assert reproduce.to_train(parse(), shipped) == ["a", "c"]
    assert reproduce.to_train(parse("--long"), shipped) == shipped
    assert reproduce.to_train(parse("b_long"), shipped) == ["b_long"]
    assert reproduce.to_train(parse("--table-only"), shipped) == []
