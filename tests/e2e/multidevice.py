"""Run by tests/e2e/test_distributed.py in a subprocess with 8 simulated CPU devices:
`python tests/e2e/multidevice.py RUN_DIR JSON` where JSON maps config paths to their overrides and
to the meshes to try; prints, as JSON, each run's eval metrics by config and mesh."""
import json
import sys

from zoo import config
from zoo.train import fit

MESHES = {"one": ["mesh.data=1"], "eight": ["mesh.data=8"], "fsdp": ["mesh.data=4", "mesh.fsdp=2"]}


def main():
    run_dir, spec = sys.argv[1], json.loads(sys.argv[2])
    out = {}
    for path, (overrides, meshes) in spec.items():
        out[path] = {}
        for mesh in meshes:
            cfg = config.load(path, [*overrides, *MESHES[mesh], f"run.dir={run_dir}", "run.plots=false"])
            summary = fit(cfg)
            out[path][mesh] = {k: v for k, v in summary.items() if k.startswith("eval_")}
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
