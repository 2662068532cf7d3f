"""Generated blocks of README.md: text between `<!-- NAME:start -->` and `<!-- NAME:end -->`
markers is written by a command (zoo.reproduce, the benches' --write-readme), never by hand."""
from __future__ import annotations

import platform

import jax


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of block `name`, e.g. "results" or "bench:gnn"."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_block(text: str, name: str, block: str) -> str:
    """`text` with everything between block `name`'s markers replaced by `block` (which gets a
    final newline if it lacks one); ValueError where the markers are absent."""
    start, end = markers(name)
    if start not in text or end not in text:
        raise ValueError(f"no {start} ... {end} markers: add them where the block belongs")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    body = block.rstrip("\n")
    return f"{head}{start}\n{body}\n{end}{tail}"


def machine() -> str:
    """Where this process runs, for the line under a generated table: CPU architecture,
    JAX's platform and version."""
    return f"{platform.machine()}, {jax.devices()[0].platform}, jax {jax.__version__}"
