"""Run by tests/test_distributed.py in a subprocess with 8 simulated CPU devices:
`python tests/multidevice.py RUN_DIR CONFIG [override ...]` prints, as JSON, the eval metrics of
the same short run on 1 device and on a data-parallel mesh of 8 (and with FSDP 4 x 2)."""
import json
import sys

from zoo import config
from zoo.train import fit


def main():
    run_dir, path, *overrides = sys.argv[1:]
    out = {}
    for name, mesh in (("one", ["mesh.data=1"]), ("eight", ["mesh.data=8"]),
                       ("fsdp", ["mesh.data=4", "mesh.fsdp=2"])):
        cfg = config.load(path, [*overrides, *mesh, f"run.dir={run_dir}", f"run.name={name}", "run.plots=false"])
        summary = fit(cfg)
        out[name] = {k: v for k, v in summary.items() if k.startswith("eval_")}
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
