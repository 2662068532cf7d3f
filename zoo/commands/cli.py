"""The `zoo` command: one entry point for a run's whole life.

    zoo train CONFIG|NAME [key=value ...]     zoo list models|datasets|optimizers|configs
    zoo evaluate RUN                          zoo predict RUN --input FILE --output FILE
    zoo generate RUN --prompt TEXT            zoo export RUN [--output FILE]
    ...                                       (`zoo --help` lists every subcommand)

Each subcommand is a module of zoo.commands with `add_parser(subparsers)` and `run(args) -> int`.
A user mistake (ConfigError) prints one line and exits 2; a bug in zoo keeps its traceback.
`python train.py` and `python generate.py` are aliases of `zoo train` and `zoo generate`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module of zoo.commands; modules are imported only when their command runs
SUBCOMMANDS = {
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "generate": "generate",
    "export": "export",
    "list": "listing",
    "summary": "summary",
    "compile": "compile",
    "compare": "compare",
    "probe": "probe",
    "reproduce": "reproduce",
}

# commands that load a run and compile its programs: they keep them in JAX's persistent cache
# (zoo.commands.host); `zoo train` decides from its config (run.compilation_cache), `zoo
# reproduce` compiles afresh so that its train times stay comparable
CACHED = ("evaluate", "predict", "generate", "export", "probe")


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other user mistake."""

    def error(self, message):
        raise SystemExit(fail(f"{self.prog}: {message}"))


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _available() -> dict[str, object]:
    """The subcommand modules present in this installation, imported."""
    out = {}
    for name, module in SUBCOMMANDS.items():
        try:
            out[name] = importlib.import_module(f"zoo.commands.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"zoo.commands.{module}":
                raise
    return out


def parser() -> Parser:
    p = Parser(prog="zoo", description="A JAX architecture zoo: train, inspect, use and export models.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for module in _available().values():
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run `zoo ARGV`; returns the exit code. A ConfigError anywhere is one line and exit 2."""
    from zoo.errors import ConfigError

    p = parser()
    args, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    # key=value overrides may follow the options too (`zoo train NAME --print-config train.steps=5`),
    # which argparse leaves unparsed once an option has ended the positionals
    if rest and isinstance(getattr(args, "overrides", None), list) and all("=" in w and not w.startswith("-") for w in rest):
        args.overrides += rest
    elif rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command in CACHED:
        from zoo.commands import host
        host.use_compilation_cache()
    try:
        return args.run(args)
    except ConfigError as e:
        return fail(str(e))


def alias(command: str, argv: list[str] | None = None) -> int:
    """`python train.py ARGS` is `zoo train ARGS` (and likewise generate.py)."""
    return main([command, *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
