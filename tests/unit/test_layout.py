"""The package's structure: no import cycles, tiers that only import downwards, functions that
fit in a head, and a README layout that names paths that exist."""
import ast
import re
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "zoo"

# Lowest first: a module may import its own tier and the ones before it, never one after.
# (The data layer and the model families are peers that never import each other.)
TIERS = [
    ["zoo.errors", "zoo.graphs", "zoo.typed_yaml"],
    ["zoo.models", "zoo.data", "zoo.tasks"],
    ["zoo.schema", "zoo.config"],
    ["zoo.optim", "zoo.compatibility", "zoo.mesh", "zoo.checkpoint", "zoo.rundir", "zoo.selection", "zoo.throughput"],
    ["zoo.experiment"],
    ["zoo.steps", "zoo.program", "zoo.replicas", "zoo.ensemble", "zoo.sweeps", "zoo.loop", "zoo.train",
     "zoo.inference", "zoo.export", "zoo.interop", "zoo.probes", "zoo.targets", "zoo.summary"],
    ["zoo.figures"],
    ["zoo.commands", "zoo.__main__", "zoo"],
]
PEERS_THAT_NEVER_MEET = [("zoo.models", "zoo.data")]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """zoo modules `path` imports anywhere in its body (`from a import b` counts a.b when b is
    a module), resolved to module names."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "zoo")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zoo":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def tier(name: str) -> int:
    matches = [(len(prefix), i) for i, level in enumerate(TIERS) for prefix in level
               if name == prefix or name.startswith(prefix + ".")]
    assert matches, f"{name} belongs to no tier: add it to TIERS in tests/unit/test_layout.py"
    return max(matches)[1]


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*stack, node, nxt])
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])


def test_every_import_goes_down_the_tiers():
    for name, targets in graph().items():
        for target in targets:
            assert tier(target) <= tier(name), f"{name} (tier {tier(name)}) reaches up to {target} (tier {tier(target)})"
            for a, b in PEERS_THAT_NEVER_MEET:
                assert not (name.startswith(a) and target.startswith(b)), f"{name} imports its peer {target}"
                assert not (name.startswith(b) and target.startswith(a)), f"{name} imports its peer {target}"


def test_functions_fit_in_a_head():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 45:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "functions over 45 lines: " + ", ".join(long)


def test_readme_layout_names_paths_that_exist():
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    paths = [m.group(1) for m in re.finditer(r"^(\S+?)(?:,|\s{2,}|$)", layout, re.M)]
    paths += [p.strip() for line in layout.splitlines() for p in line.split("  ")[0].split(",")[1:]]
    assert len(paths) >= 10
    for p in paths:
        assert (ROOT / p.strip()).exists(), f"README's Layout names {p!r}, which does not exist"


def test_readme_layout_names_each_module_once():
    """Every module and package of zoo/ appears in the Layout exactly once (a new module that the
    Layout does not name, or names twice, fails here)."""
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("```")[1]
    entries = [p for p in PACKAGE.iterdir() if not p.name.startswith(("_", "."))
               and (p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__"))]
    assert len(entries) >= 25
    for p in entries:
        name = f"zoo/{p.name}" + ("/" if p.is_dir() else "")
        count = len(re.findall(re.escape(name) + r"(?=[\s,]|$)", layout, re.M))
        assert count == 1, f"README's Layout names {name} {count} times: once, please"
