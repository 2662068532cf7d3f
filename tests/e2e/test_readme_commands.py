"""Every shell command the README shows, run as a user types it: each ```bash block of README.md,
command by command, through the installed `zoo` console script (and `python` of this venv), in a
temporary folder outside the checkout. Each must exit 0 without a traceback.

The README's commands are written for the repository root (`python train.py`, `configs/...`,
`../shared/data`): the folder holds links to those, so runs and files land in the folder, never in
the checkout. One rule keeps training short, and it is the only change made to a command:

    STEP RULE: step counts shrink 100-fold. `train.steps=N`, `--step N` and the numbers of
    `train.profile_steps=[a,b]` become N // 100 (at least 1); a training command (`zoo train`,
    `python train.py`) that sets no `train.steps` gets `train.steps=20` (the README's 2000 / 100).

Marks in the README itself, HTML comments on the lines just before a block's fence:

    <!-- not run: REASON -->                 the block is not run (a TPU pod, a server, your files)
    <!-- not run `WORDS`: REASON -->         its commands containing WORDS are not run
    <!-- first: COMMAND; COMMAND -->          what the block uses from elsewhere (a trained run),
                                             run once per session folder, with the step rule
    <!-- needs MODULE, else exit N: TEXT -->  without MODULE installed each command exits N with
                                             one line containing TEXT

A fenced block of shell commands that is neither ```bash nor marked `not run` fails the test below,
so a new command cannot slip past it.
"""
import dataclasses
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, subprocess_env, zoo_command

README = ROOT / "README.md"
SHARED = Path(os.environ.get("ZOO_SHARED", ROOT.parent / "shared"))   # ../shared/data beside the checkout (ZOO_SHARED: elsewhere)
MARK = re.compile(r"<!-- (?P<kind>not run|first|needs)\s*(?P<arg>[^:]*?)\s*:\s*(?P<text>.+?)\s*-->")
FENCE = "```"
SHELL_WORDS = ("zoo", "python", "python3", "pip", ".")
STEP_SHRINK, DEFAULT_STEPS = 100, 20


@dataclasses.dataclass
class Block:
    heading: str
    line: int                 # of the opening fence, 1-based
    language: str
    commands: list[str]       # one per command, continuation lines joined, comment lines dropped
    marks: list[dict]

    @property
    def id(self) -> str:
        return f"{re.sub(r'[^a-z0-9]+', '-', self.heading.lower()).strip('-')}-line{self.line}"

    def marked(self, kind: str) -> list[dict]:
        return [m for m in self.marks if m["kind"] == kind]


def blocks(text: str) -> list[Block]:
    """Every fenced block of the README, with the marks on the lines just before its fence."""
    out, lines, heading, i = [], text.splitlines(), "top", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        if not line.startswith(FENCE):
            i += 1
            continue
        marks, j = [], i - 1
        while j >= 0 and (found := MARK.fullmatch(lines[j].strip())):
            marks.insert(0, found.groupdict())
            j -= 1
        end = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(FENCE))
        out.append(Block(heading, i + 1, line[3:].strip(), _commands(lines[i + 1:end]), marks))
        i = end + 1
    return out


def _commands(lines: list[str]) -> list[str]:
    joined = "\n".join(lines).replace("\\\n", " ")
    return [c.strip() for c in joined.splitlines() if c.strip() and not c.strip().startswith("#")]


def shrink(argv: list[str]) -> list[str]:
    """The step rule of the module docstring."""
    def fewer(n: str) -> str:
        return str(max(1, int(n) // STEP_SHRINK))

    out = []
    for i, word in enumerate(argv):
        if word.startswith("train.steps="):
            word = "train.steps=" + fewer(word.split("=", 1)[1])
        elif word.startswith("train.profile_steps="):
            first, last = yaml.safe_load(word.split("=", 1)[1])
            word = f"train.profile_steps=[{fewer(first)},{fewer(last)}]"
        elif i > 0 and argv[i - 1] == "--step":
            word = fewer(word)
        out.append(word)
    trains = argv[:2] in (["zoo", "train"], ["python", "train.py"])
    if trains and not any(w.startswith("train.steps=") for w in argv):
        out.append(f"train.steps={DEFAULT_STEPS}")
    return out


def executable(argv: list[str]) -> list[str]:
    """`zoo` is the installed console script; `python` the interpreter of this venv."""
    program = {"zoo": zoo_command(), "python": sys.executable, "python3": sys.executable}[argv[0]]
    return [program, *argv[1:]]


def uses_shared_data(block: Block) -> bool:
    """Whether the block trains a shipped config whose data is read from ../shared/data."""
    text = " ".join([*block.commands, *(m["text"] for m in block.marked("first"))])
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        data_path = str((yaml.safe_load(path.read_text()).get("data") or {}).get("path", ""))
        if data_path.startswith("../shared/") and re.search(rf"\b{path.stem}\b", text):
            return True
    return False


@pytest.fixture(scope="session")
def folder(tmp_path_factory):
    """A user's folder outside the checkout, laid out as the README assumes: train.py, generate.py
    and configs/ of the checkout, ../shared/data beside it. Returns (folder, commands already run)."""
    top = tmp_path_factory.mktemp("readme")
    here = top / "zoo"
    here.mkdir()
    for name in ("train.py", "generate.py", "configs"):
        (here / name).symlink_to(ROOT / name)
    if SHARED.exists():
        (top / "shared").symlink_to(SHARED)
    return here, set()


def run(command: str, cwd: Path, block: Block) -> None:
    argv = shrink(shlex.split(command, comments=True))
    env = subprocess_env()
    proc = subprocess.run(executable(argv), cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    said = f"$ {shlex.join(argv)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, said
    for needs in block.marked("needs"):   # "MODULE, else exit N": TEXT
        module, code = needs["arg"].split(",")[0], int(needs["arg"].split()[-1])
        if importlib.util.find_spec(module) is None:
            assert proc.returncode == code, said
            assert len(proc.stderr.splitlines()) == 1 and needs["text"] in proc.stderr, said
            return
    assert proc.returncode == 0, said


README_BLOCKS = blocks(README.read_text(encoding="utf-8"))
RUN = [b for b in README_BLOCKS if b.language == "bash" and not any(not m["arg"] for m in b.marked("not run"))]


def test_the_readme_marks_every_block_of_commands_it_does_not_run():
    for block in README_BLOCKS:
        if block.language in ("python", "bash"):
            continue
        shell = [c for c in block.commands if c.split()[0] in SHELL_WORDS]
        assert not shell or block.marked("not run"), (
            f"README.md:{block.line} holds commands ({shell[0]!r}): fence it as ```bash so this test runs it, "
            "or put <!-- not run: REASON --> before it")
    assert all(m["text"] for b in README_BLOCKS for m in b.marks), "every mark says why"
    assert len(RUN) >= 8, [b.id for b in RUN]


def test_the_step_rule():
    assert shrink(["zoo", "train", "mnist1d_cnn", "train.steps=2000"]) == ["zoo", "train", "mnist1d_cnn", "train.steps=20"]
    assert shrink(["python", "train.py", "--resume", "runs/x"]) == ["python", "train.py", "--resume", "runs/x",
                                                                     "train.steps=20"]
    assert shrink(["zoo", "train", "m", "train.profile_steps=[100,105]"])[3] == "train.profile_steps=[1,1]"
    assert shrink(["zoo", "evaluate", "runs/x", "--step", "3000"]) == ["zoo", "evaluate", "runs/x", "--step", "30"]
    assert shrink(["zoo", "export", "runs/x"]) == ["zoo", "export", "runs/x"]


@pytest.mark.parametrize("block", RUN, ids=lambda b: b.id)
def test_readme_block_runs(block, folder):
    here, done = folder
    if uses_shared_data(block) and not (here.parent / "shared" / "data").exists():
        pytest.skip(f"{SHARED / 'data'} is not on this machine (Cora, tiny Shakespeare)")
    for mark in block.marked("first"):
        for command in (c.strip() for c in mark["text"].split(";")):
            if command not in done:
                run(command, here, block)
                done.add(command)
    skipped = [m["arg"].strip("`") for m in block.marked("not run")]
    for command in block.commands:
        if not any(words in command for words in skipped):
            run(command, here, block)
