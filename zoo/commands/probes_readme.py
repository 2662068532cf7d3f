"""The README's "The math, measured" section, produced by one command and never by hand.

    python -m zoo.commands.probes_readme                  # train what is missing, probe, write README
    python -m zoo.commands.probes_readme --retrain        # train every run afresh

Trains (or reuses, when results/probes/runs/<name>/summary.json exists) the shipped MNIST-1D
runs below plus the variants that make a symmetry exact, runs their probes, copies the figures
to docs/probes/, writes results/probes/probes.json, and replaces the block between the
`<!-- probes:start -->` / `<!-- probes:end -->` markers of README.md. Each probe's wall time is
measured and printed with it. Paths are relative to the repository root, where this runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALL = ("landscape", "curvature", "calibration", "gradflow", "symmetry")
# run name -> (shipped config, overrides, probes)
RUNS: dict[str, tuple[str, list[str], tuple[str, ...]]] = {
    "mnist1d_mlp": ("mnist1d_mlp", [], ALL),
    "mnist1d_cnn": ("mnist1d_cnn", [], ALL),
    "mnist1d_cnn_circular": ("mnist1d_cnn", ["model.padding=circular", "model.readout=mean"], ("symmetry", "calibration")),
    "mnist1d_gru": ("mnist1d_gru", [], ("gradflow", "symmetry", "calibration")),
    "mnist1d_transformer": ("mnist1d_transformer", [], ALL),
    "mnist1d_transformer_unordered": ("mnist1d_transformer", ["model.positions=none"], ("symmetry", "calibration")),
    "karate_gcn": ("karate_gcn", [], ("symmetry",)),
}
START, END = "<!-- probes:start -->", "<!-- probes:end -->"


def trained_run(name: str, out: Path, retrain: bool) -> Path:
    """The run directory of `name` under out/runs, trained now unless it is already there."""
    from zoo import config
    from zoo.config import config_path
    from zoo.train import fit

    run_dir = out / "runs" / name
    if retrain and run_dir.exists():
        shutil.rmtree(run_dir)
    if not (run_dir / "summary.json").exists():
        shipped, overrides, _ = RUNS[name]
        cfg = config.load(config_path(shipped), [*overrides, f"run.dir={out / 'runs'}", f"run.name={name}"])
        fit(cfg)
    return run_dir


def probe_run(name: str, run_dir: Path, docs: Path) -> dict:
    """Every probe of run `name`: {probe: numbers with "seconds" and the copied "figure"}."""
    from zoo import probes
    from zoo.experiment import load_run

    trained = load_run(run_dir)
    out = {}
    for probe in RUNS[name][2]:
        start = time.perf_counter()
        numbers = probes.run(probe, trained)
        numbers["seconds"] = time.perf_counter() - start
        figure = docs / f"{name}_{probe}.png"
        shutil.copyfile(numbers["files"]["figure"], figure)
        numbers["figure"] = str(figure.relative_to(ROOT)) if figure.is_relative_to(ROOT) else str(figure)
        out[probe] = numbers
        print(f"{name} {probe}: {numbers['seconds']:.1f} s", flush=True)
    return out


def depth_variants(docs: Path) -> list[str]:
    """Figures of ||dL/dz_l|| at initialisation through 12-layer MLPs and CNNs, plain, residual,
    normalised and both, on an MNIST-1D batch; returns their paths."""
    import jax
    import matplotlib.pyplot as plt

    from zoo.data import mnist1d
    from zoo.probes import gradflow

    data = mnist1d.load(mnist1d.MNIST1DConfig()).test
    batch = {"x": data["x"][:256], "y": data["y"][:256], "mask": jax.numpy.ones(256)}
    paths = []
    for family, norm, hyper in (("mlp", "layer", dict(depth=12, width=128)),
                                ("cnn", "group", dict(channels=(16,) * 12, kernel_sizes=(3,), strides=(1,),
                                                      padding="same", num_groups=4))):
        profiles = {label: {"axis": "depth", "init": profile}
                    for label, profile in _variant_profiles(family, norm, hyper, batch).items()}
        fig = gradflow.plot(profiles, f"12-layer {family.upper()} at initialisation")
        path = docs / f"gradflow_depth_{family}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path))
    return paths


def _variant_profiles(family: str, norm: str, hyper: dict, batch: dict) -> dict[str, dict]:
    """{variant: depth profile at init} for residual x norm variants of one family."""
    import jax

    from zoo.models import build, entry
    from zoo.probes import gradflow
    from zoo.tasks import classification

    out = {}
    for residual in (False, True):
        for normed in (False, True):
            cfg = entry(family).config(num_outputs=10, residual=residual, norm=norm if normed else "none", **hyper)
            model = build(family, cfg)
            params = model.init(jax.random.key(0), batch["x"])
            loss = lambda p, b, model=model: (classification(model.apply(p, b["x"]), b)["loss"], 0.0)  # noqa: E731
            label = f"{family}{' residual' if residual else ''}{' ' + norm + ' norm' if normed else ''}"
            out[label] = gradflow.depth_profile(family, cfg, loss, params, batch)
    return out


def _cell(results: dict, probe: str, fmt) -> str:
    return fmt(results[probe]) if probe in results else ""


def markdown(results: dict[str, dict], variants: list[str]) -> str:
    """The README block: a table of the numbers, the symmetry table and the figures."""
    from zoo.probes.symmetry import table

    lines = ["| run | lambda_max (trained) | 2 / peak lr | Hessian trace | ECE | ECE after T | T | "
             "gradflow first / last | probe times (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        def grad_ratio(g):
            values = list(g["trained"].values()) if isinstance(g["trained"], dict) else g["trained"]
            return f"{values[0] / values[-1]:.3g}"
        lines.append(" | ".join([
            f"| {name}", _cell(r, "curvature", lambda c: f"{c['trained']['top'][0]:.3g}"),
            _cell(r, "curvature", lambda c: f"{c['edge_of_stability']['threshold_2_over_lr']:.3g}"),
            _cell(r, "curvature", lambda c: f"{c['trained']['trace']:.3g}"),
            _cell(r, "calibration", lambda c: f"{100 * c['before']['ece']:.2f}%"),
            _cell(r, "calibration", lambda c: f"{100 * c['after']['ece']:.2f}%"),
            _cell(r, "calibration", lambda c: f"{c['temperature']:.2f}"),
            _cell(r, "gradflow", grad_ratio),
            ", ".join(f"{p} {v['seconds']:.0f}" for p, v in r.items())]) + " |")
    symmetry = {name: r["symmetry"] for name, r in results.items() if "symmetry" in r}
    figures = [f"![{name} {probe}]({v['figure']})" for name, r in results.items() for probe, v in r.items()
               if probe in ("landscape", "curvature", "gradflow")]
    return "\n".join([*lines, "", "Symmetry (relative error of the logits under the group):", "",
                      table(symmetry), *[f"![gradient flow through depth at initialisation]({v})" for v in variants], "",
                      *figures, ""])


def update_readme(readme: Path, text: str) -> bool:
    """Replace the block between the markers; False when README.md has no markers."""
    content = readme.read_text()
    if START not in content or END not in content:
        return False
    head, rest = content.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{text}{END}{tail}")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zoo.commands.probes_readme", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", default=list(RUNS), help=f"runs to probe (default: {', '.join(RUNS)})")
    p.add_argument("--retrain", action="store_true", help="train the runs afresh")
    p.add_argument("--out", default=str(ROOT / "results" / "probes"), help="where runs and numbers go")
    args = p.parse_args(argv)
    os.chdir(ROOT)
    out, docs = Path(args.out).absolute(), ROOT / "docs" / "probes"
    docs.mkdir(parents=True, exist_ok=True)
    results = {name: probe_run(name, trained_run(name, out, args.retrain), docs) for name in args.runs}
    (out / "probes.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results, depth_variants(docs))
    (out / "probes.md").write_text(text)
    if not update_readme(ROOT / "README.md", text):
        print(f"README.md has no {START} / {END} markers: wrote {out / 'probes.md'} only")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
