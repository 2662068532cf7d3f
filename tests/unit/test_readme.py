"""README's generated blocks: a command replaces the text between its markers and nothing else."""
import sys

import pytest

from bench.common import write_readme_block
from zoo.commands.readme import replace_block

PAGE = "# title\n\n<!-- bench:gnn:start -->\nold table\n<!-- bench:gnn:end -->\n\n## next\n"


def test_replace_block_replaces_only_between_its_markers():
    new = replace_block(PAGE, "bench:gnn", "new table")
    assert new == PAGE.replace("old table", "new table")
    assert replace_block(new, "bench:gnn", "old table\n") == PAGE  # one final newline, either way


def test_replace_block_without_markers_names_them():
    with pytest.raises(ValueError, match="<!-- results:start -->"):
        replace_block(PAGE, "results", "table")


def test_bench_block_states_its_command(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(PAGE)
    monkeypatch.setattr(sys, "argv", ["bench_gnn.py", "--threads", "1", "--write-readme"])
    write_readme_block("gnn", "model  ms\ngcn    1.37\n", readme)
    text, (before, after) = readme.read_text(), PAGE.split("old table\n")
    assert text.startswith(before + "`python -m bench.bench_gnn --threads 1` on ")   # --write-readme left out
    assert ", jax " in text.splitlines()[3]
    assert text.endswith(":\n\n```\nmodel  ms\ngcn    1.37\n```\n" + after)
