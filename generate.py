"""Sample from a trained language-model run: python generate.py runs/<name> --prompt "..." --length 300"""
from zoo.generate import main

if __name__ == "__main__":
    raise SystemExit(main())
