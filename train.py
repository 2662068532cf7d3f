"""Train any zoo model from a YAML config.

    python train.py                                   # configs/mnist1d_cnn.yaml
    python train.py configs/<name>.yaml key=value ... # dotted overrides, YAML-typed
    python train.py --resume runs/<name> [key=value]  # continue from the latest checkpoint
    python train.py configs/<name>.yaml --print-config
"""
from zoo.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
