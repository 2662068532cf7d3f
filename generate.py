"""Sample from a trained language-model run: an alias of `zoo generate`.

    python generate.py runs/<name> --prompt "..." --length 300
"""
from zoo.commands.cli import alias

if __name__ == "__main__":
    raise SystemExit(alias("generate"))
