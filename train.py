"""Train any zoo model from a YAML config: an alias of `zoo train`.

    python train.py                                   # the shipped mnist1d_cnn config
    python train.py configs/<name>.yaml key=value ... # dotted overrides, YAML-typed
    python train.py --resume runs/<name> [key=value]  # continue from the latest checkpoint
    python train.py configs/<name>.yaml --print-config
"""
from zoo.commands.cli import alias

if __name__ == "__main__":
    raise SystemExit(alias("train"))
