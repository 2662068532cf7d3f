"""Train every shipped config and write the results table beside the published numbers.

    zoo reproduce                       # every shipped config, README table updated
    zoo reproduce mnist1d_cnn cora_gcn  # some of them
    zoo reproduce --seeds 3             # at least 3 seeds each
    zoo reproduce --table-only          # rewrite the tables from results/results.json
    zoo reproduce --long                # also the *_long configs (a paper's whole schedule)

Writes results/results.json and results/results.md, and replaces the table between the
`<!-- results:start -->` / `<!-- results:end -->` markers of README.md: the README's numbers
are never typed by hand. Rows of configs not run this time are kept from results.json, so one
config can be re-run alone. A config whose data file is absent is listed as skipped (the
example-file configs, until `python -m zoo.data.examples` has written their files under the
folder this runs in; the shipped data of the others is found inside the package).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from zoo import config

ROOT = Path(__file__).resolve().parents[2]  # the repository: results/ and README.md live there

# config -> (metric, published value, source, seeds to average)
PUBLISHED: dict[str, tuple[str, float | None, str, int]] = {
    "mnist1d_mlp": ("eval_accuracy", 0.68, "MNIST-1D paper (Greydanus 2020), MLP", 1),
    "mnist1d_cnn": ("eval_accuracy", 0.94, "MNIST-1D paper, CNN", 1),
    "digits_cnn": ("eval_accuracy", 0.98, "issue target", 1),
    "mnist1d_gru": ("eval_accuracy", 0.91, "MNIST-1D paper, GRU", 1),
    "mnist1d_lstm": ("eval_accuracy", 0.91, "issue target (paper's GRU)", 1),
    "charlm_lstm": ("eval_loss", None, "nats/char, no published number", 1),
    "mnist1d_transformer": ("eval_accuracy", 0.94, "issue target", 1),
    "charlm_transformer": ("eval_loss", None, "nats/char, no published number", 1),
    "shakespeare_char": ("eval_loss", 1.88, "nanoGPT shakespeare_char, CPU recipe", 3),
    "shakespeare_llama": ("eval_loss", None, "LLaMA's block (RMSNorm, RoPE, SwiGLU, no bias); GPT-2's: shakespeare_char", 3),
    # each of LLaMA's choices alone in GPT-2's block, 2000 steps as shakespeare_char, 3 seeds
    "shakespeare_rmsnorm": ("eval_loss", None, "GPT-2's block + RMSNorm only", 3),
    "shakespeare_rope": ("eval_loss", None, "GPT-2's block + RoPE only", 3),
    "shakespeare_swiglu": ("eval_loss", None, "GPT-2's block + SwiGLU only", 3),
    "shakespeare_nobias": ("eval_loss", None, "GPT-2's block without biases only", 3),
    "karate_gcn": ("eval_accuracy", None, "no published split", 1),
    "cora_gcn": ("eval_accuracy", 0.815, "GCN (Kipf & Welling 2017)", 10),
    "citeseer_gcn": ("eval_accuracy", 0.703, "GCN (Kipf & Welling 2017)", 10),
    "cora_gat": ("eval_accuracy", 0.830, "GAT (Velickovic et al. 2018)", 10),
    "citeseer_gat": ("eval_accuracy", 0.725, "GAT (Velickovic et al. 2018)", 10),
    "mnist1d_odenet": ("eval_accuracy", 0.94, "issue target", 1),
    "spiral_node": ("eval_mse", None, "torchdiffeq demo, run in bench/", 1),
    "toy2d_cnf": ("eval_loss", None, "test NLL in nats (the density's entropy is ~1.70)", 1),
    "mnist1d_cnn_finetune": ("eval_accuracy", None, "from scratch on the same 400 examples: 75.2%", 1),
    "nbody_egnn": ("eval_mse", 0.0071, "EGNN (Satorras et al. 2021), 10,000 epochs; here 100", 3),
    "nbody_gnn": ("eval_mse", 0.0107, "EGNN paper's GNN baseline, 10,000 epochs; here 100", 3),
    "nbody_mpnn": ("eval_mse", None, "zoo's graph network on the same data; the paper's GNN: nbody_gnn", 3),
    "mass_spring_hnn": ("energy_mse", 3.8e-4, "HNN (Greydanus et al. 2019), table 1", 3),
    "mass_spring_baseline": ("energy_mse", 0.17, "HNN paper's baseline MLP, table 1", 3),
    "pendulum_hnn": ("energy_mse", 0.024, "HNN (Greydanus et al. 2019), table 1", 3),
    "pendulum_baseline": ("energy_mse", 0.041, "HNN paper's baseline MLP, table 1", 3),
    "two_body_hnn": ("energy_mse", 3.9e-5, "HNN (Greydanus et al. 2019), table 1; 10 epochs here", 1),
    "two_body_baseline": ("energy_mse", 6.3e-2, "HNN paper's baseline MLP, table 1; 10 epochs here", 1),
    "digits_vit": ("eval_accuracy", 0.97, "issue target", 1),
    "digits_mixer": ("eval_accuracy", 0.97, "issue target", 3),
    # Zaheer et al. 2017 (Fig. 2): trained on sets of <= 10, accuracy on sets of 50 (python -m zoo.figures.sets)
    "digit_sets_deepsets": ("eval_accuracy", None, "Deep Sets, sets of 50 digit images (paper: images, MNIST)", 3),
    "digit_sets_gru": ("eval_accuracy", None, "GRU baseline, sets of 50 digit images", 3),
    "digit_sets_deepsets_onehot": ("eval_accuracy", None, "Deep Sets, sets of 50 given digits (paper: text)", 3),
    "digit_sets_gru_onehot": ("eval_accuracy", None, "GRU baseline, sets of 50 given digits", 3),
    # He et al. 2016 (Figs. 1, 6): training loss after equal steps; plain32 > plain8, resnet32 <= resnet8
    "mnist1d_plain8": ("train_loss", None, "degradation: plain, 8 conv layers", 3),
    "mnist1d_plain32": ("train_loss", None, "degradation: plain, 32 conv layers", 3),
    "mnist1d_resnet8": ("train_loss", None, "degradation: residual, 8 conv layers", 3),
    "mnist1d_resnet32": ("train_loss", None, "degradation: residual, 32 conv layers", 3),
    # Dupont et al. 2019 (§4.1, Figs. 1, 8): curves, no table; the ordering is ANODE < NODE in loss and NFE
    "g1d_node": ("eval_mse", None, "ANODE paper: a 1-D flow cannot fit -x (best monotone fit: MSE 1/3)", 3),
    "g1d_anode": ("eval_mse", None, "ANODE paper: one extra dimension fits -x", 3),
    "spheres_node": ("eval_mse", None, "ANODE paper, concentric spheres 2-D: NODE", 3),
    "spheres_anode": ("eval_mse", None, "ANODE paper, concentric spheres 2-D: ANODE", 3),
    # Rubanova et al. 2019 §4.1 (toy data): figures, no table; the paper's ordering is latent ODE best
    "periodic_latent_ode": ("eval_interp_mse", None, "Latent ODE (Rubanova et al. 2019), toy data: no table", 3),
    "periodic_ode_rnn": ("eval_interp_mse", None, "ODE-RNN (Rubanova et al. 2019), toy data: no table", 3),
    "periodic_gru_gaps": ("eval_interp_mse", None, "RNN with time gaps (Rubanova et al. 2019's baseline)", 3),
    "periodic_rnn_vae": ("eval_interp_mse", None, "RNN-VAE (Rubanova et al. 2019's baseline)", 3),
    "numbers_en_de_transformer": ("eval_exact_match", 0.99, "issue target (greedy; 1,000 held-out numbers)", 3),
    "numbers_en_de_gru": ("eval_exact_match", 0.95, "issue target (greedy; 1,000 held-out numbers)", 3),
    "numbers_en_fr_gru": ("eval_exact_match", None, "second language pair, no target; one seed", 1),
    **{f"{data}_{model}": None for data in ("gunpoint", "italypower", "arrowhead", "basicmotions")
       for model in ("fcn", "resnet", "gru", "transformer")},   # filled in by _time_series below
}
# config -> further metrics of the same runs, one row each (mean over the same seeds)
ALSO: dict[str, tuple[str, ...]] = {
    **{name: ("eval_nfe",) for name in ("g1d_node", "g1d_anode", "spheres_node", "spheres_anode")},
    **{name: ("eval_extrap_mse",) for name in ("periodic_latent_ode", "periodic_ode_rnn", "periodic_gru_gaps",
                                                "periodic_rnn_vae")}}
# translation configs: their decoded test split scored (zoo.translating: beam search's exact match,
# greedy decoding's character BLEU and chrF from sacrebleu), one row each
TRANSLATED = ("beam_exact_match", "greedy_bleu", "greedy_chrf")
# dl-4-tsc (Fawaz et al. 2019), results/results-ucr-128.csv: FCN and ResNet test accuracy, mean of 5 runs
DL4TSC = {"gunpoint": (1.0, 0.9907), "italypower": (0.9629, 0.9615), "arrowhead": (0.8434, 0.8377)}


def _time_series(name: str) -> tuple[str, float | None, str, int]:
    """The row of a UCR/UEA config DATA_MODEL: dl-4-tsc's number for FCN and ResNet, both beside
    the other models; BasicMotions (UEA multivariate) is not in dl-4-tsc's UCR results."""
    data, model = name.split("_")
    if data not in DL4TSC:
        return "eval_accuracy", None, "UEA multivariate: not in dl-4-tsc's UCR results", 5
    fcn, resnet = DL4TSC[data]
    if model == "fcn":
        return "eval_accuracy", fcn, "dl-4-tsc FCN, mean of 5 runs", 5
    if model == "resnet":
        return "eval_accuracy", resnet, "dl-4-tsc ResNet, mean of 5 runs", 5
    return "eval_accuracy", None, f"dl-4-tsc: FCN {fcn:.1%}, ResNet {resnet:.1%}", 5


PUBLISHED.update({name: _time_series(name) for name, row in PUBLISHED.items() if row is None})
# The long-memory tasks at a CPU-sized T (Bai et al. 2018 ran T=600 and 1000): the signature, not a number
PUBLISHED.update({f"adding_{m}": ("eval_mse", None, "adding, T=200: predicting the mean scores 0.167", 1)
                  for m in ("rnn", "lstm", "gru", "tcn")})
PUBLISHED.update({f"copy_memory_{m}": ("eval_loss", None, "copy memory, T=100: remembering nothing scores 0.1733", 1)
                  for m in ("rnn", "lstm", "gru", "tcn")})
# ... and at the paper's T, the paper's model sizes (long rows: its repository trains ~15,600 steps, these fewer)
BAI2018 = {"adding": {"lstm": 0.164, "gru": 5.3e-5, "rnn": 0.177, "tcn": 5.8e-6},
           "copy_memory": {"lstm": 0.0204, "gru": 0.0197, "rnn": 0.0202, "tcn": 3.5e-5}}
PUBLISHED.update({f"adding_{m}_t600": ("eval_mse", v, "Bai et al. 2018, table 1 (T=600); long, one seed", 1)
                  for m, v in BAI2018["adding"].items()})
PUBLISHED.update({f"copy_memory_{m}_t1000": ("eval_loss", v, "Bai et al. 2018, table 1 (T=1000); long, one seed", 1)
                  for m, v in BAI2018["copy_memory"].items()})
# long rows: the paper's own schedule (or most of it), run on an accelerator
PUBLISHED.update({
    "gunpoint_fcn_long": ("eval_accuracy", DL4TSC["gunpoint"][0], "dl-4-tsc FCN, mean of 5 runs; its schedule "
                          "(batch 5, 2,000 epochs); long", 5),
    "nbody_gnn_long": ("eval_mse", 0.0107, "EGNN paper's GNN baseline, 10,000 epochs; here 2,135; long", 3)})
PUBLISHED.update({f"adding_{m}_t600_long": ("eval_mse", BAI2018["adding"][m], "Bai et al. 2018, table 1 (T=600); its "
                                            "code's schedule (15,625 steps of 50,000 examples); long, one seed", 1)
                  for m in ("gru", "tcn")})
# metrics a probe measures on the trained runs rather than the trainer: energy along rollouts
PROBED = {"energy_mse": "conservation"}
LOWER_IS_BETTER = ("eval_loss", "eval_mse", "energy_mse", "train_loss")


def run_config(path: Path, seeds: int, out: Path, overrides: list[str]) -> dict:
    """Train config `path` over seeds 0..N-1, N = max(seeds, its published count): several
    seeds as one stacked program (train.seeds, zoo.replicas); its row of the table."""
    from zoo import ensemble
    from zoo.train import fit
    name = path.stem
    metric, published, source, default_seeds = PUBLISHED.get(name, ("eval_accuracy", None, "", 1))
    count = max(seeds, default_seeds)
    seeds = [f"train.seeds={list(range(count))}", f"run.name={name}-seeds0-{count - 1}"] if count > 1 else \
        ["train.seed=0", f"run.name={name}-seed0"]
    cfg = config.load(path, [*seeds, f"run.dir={out / 'runs'}", *_start_from(path, out), *overrides])
    summary = fit(cfg)
    rows = summary.get("replicas", [summary])
    if metric in PROBED:
        values = probed(summary["run_dir"], metric)
    elif metric.startswith("train_"):  # the trained params on every training example (eval mode)
        from zoo import inference
        from zoo.experiment import load_runs
        values = [inference.evaluate(run, "train")[metric] for run in load_runs(summary["run_dir"])]
    else:
        metric = metric if metric in rows[0] else "eval_loss"  # e.g. a density model: no accuracy
        values = [r[metric] for r in rows]
    steps = [r["steps"] for r in rows]  # fewer than configured where early stopping ended a run
    mean, std = ensemble.mean_std(values)
    also = {m: ensemble.mean_std([r[m] for r in rows]) for m in ALSO.get(name, ())} | translated(cfg, summary["run_dir"])
    return {"config": name, "metric": metric, "mean": mean, "std": std, "seeds": len(values),
            "values": values, **({"also": also} if also else {}), "published": published, "source": source,
            "wall_time_s": summary["wall_time_s"], "device": device(),
            "steps": steps[0] if min(steps) == max(steps) else f"{min(steps)}-{max(steps)}",
            "params": summary["params"]}


def device() -> str:
    """The accelerator a row trained on ("cpu", or e.g. "NVIDIA H200"): its wall time means little
    without it, and rows of one table may come from different machines."""
    import jax
    return jax.devices()[0].device_kind


def translated(cfg, run_dir: str) -> dict[str, tuple[float, float]]:
    """A translation run's TRANSLATED scores, mean and deviation over its replicas; {} for others."""
    from zoo import ensemble, translating
    from zoo.experiment import load_runs
    from zoo.models import entry
    if entry(cfg.model_name).translate is None:
        return {}
    scores = [translating.evaluate(run) for run in load_runs(run_dir)]
    return {m: ensemble.mean_std([s[m] for s in scores]) for m in TRANSLATED}


def probed(run_dir: str, metric: str) -> list[float]:
    """`metric` of every replica of a trained run, measured by its probe (PROBED)."""
    from zoo import probes
    from zoo.experiment import load_runs
    return [probes.run(PROBED[metric], run)[metric] for run in load_runs(run_dir)]


def _start_from(path: Path, out: Path) -> list[str]:
    """A fine-tuning config starts from this table's seed-0 run of the config it names."""
    init_from = config.load(path).train.init_from
    if init_from is None:
        return []
    return [f"train.init_from={out / 'runs' / (Path(init_from).name + '-seed0')}"]


def _fmt(value: float, metric: str) -> str:
    if metric.endswith("nfe"):
        return f"{value:.1f}"
    if metric.endswith(("bleu", "chrf")):   # sacrebleu's 0-100 scores
        return f"{value:.2f}"
    if metric.endswith(("accuracy", "exact_match")):
        return f"{100 * value:.1f}%"
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2e}"


def _time(row: dict) -> str:
    """A row's wall time, with its accelerator named where it did not train on the CPU (rows written
    before rows named their device trained on the table's machine)."""
    where = row.get("device", "cpu")
    return f"{row['wall_time_s']:.1f}" + ("" if where == "cpu" else f" on an {where}")


def table(rows: list[dict]) -> str:
    from zoo.commands.readme import machine
    lines = ["| config | metric | zoo | published | seeds | steps | params | train time, all seeds (s) | source |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['config']} | | skipped: {r['skipped']} | | | | | | |")
            continue
        zoo = _fmt(r["mean"], r["metric"]) + (f" ± {_fmt(r['std'], r['metric'])}" if r["seeds"] > 1 else "")
        pub = _fmt(r["published"], r["metric"]) if r["published"] is not None else "-"
        lines.append(f"| {r['config']} | {r['metric']} | {zoo} | {pub} | {r['seeds']} | {r['steps']} | "
                     f"{r['params']:,} | {_time(r)} | {r['source']} |")
        for metric, (mean, std) in r.get("also", {}).items():
            spread = f" ± {_fmt(std, metric)}" if r["seeds"] > 1 else ""
            lines.append(f"| {r['config']} | {metric} | {_fmt(mean, metric)}{spread} | - | "
                         f"{r['seeds']} | {r['steps']} | {r['params']:,} | (same runs) | {r['source']} |")
    return "\n".join(lines) + (f"\n\nGenerated by `zoo reproduce` on {machine()}. Train time is "
                                "`fit()`'s wall time (data, compile, training, evaluation), on that machine's CPU "
                                "unless the row names an accelerator; the command adds "
                                "about 3 s of interpreter start and imports.\n")


def update_readme(readme: Path, text: str) -> None:
    from zoo.commands.readme import markers, replace_block
    content = readme.read_text()
    if all(marker in content for marker in markers("results")):
        readme.write_text(replace_block(content, "results", text))


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("reproduce", help="train every shipped config and write the results table",
                       description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="*", help="config names (default: every configs/*.yaml)")
    p.add_argument("--seeds", type=int, default=1, help="at least this many seeds per config")
    p.add_argument("--out", default=str(ROOT / "results"), help="output directory")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every config")
    p.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    p.add_argument("--table-only", action="store_true", help="train nothing: rewrite the tables from results.json")
    p.add_argument("--long", action="store_true",
                   help="with no configs named: also the *_long ones (a paper's whole schedule, hours on a CPU)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from zoo.commands import host
    host.keep_freed_memory()  # as zoo train does (zoo.commands.host)
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)
    shipped = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    results_file = out / "results.json"
    rows = {r["config"]: r for r in json.loads(results_file.read_text())} if results_file.exists() else {}

    def write() -> str:  # after every config: a later failure loses nothing already trained
        ordered = [rows[n] for n in shipped if n in rows]
        results_file.write_text(json.dumps(ordered, indent=2) + "\n")
        text = table(ordered)
        (out / "results.md").write_text(text)
        if not args.no_readme:
            update_readme(ROOT / "README.md", text)
        return text

    for name in to_train(args, shipped):
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            rows[name] = run_config(ROOT / "configs" / f"{name}.yaml", args.seeds, out, args.set)
        except config.ConfigError as e:  # e.g. a data file that this machine does not have
            rows[name] = {"config": name, "skipped": str(e)}
        write()
    text = write()
    print(text)
    return 0


def to_train(args: argparse.Namespace, shipped: list[str]) -> list[str]:
    """The configs this call trains: those named, else every shipped one but the *_long ones (an
    accelerator's runs; their rows are kept from results.json) unless --long."""
    if args.table_only:
        return []
    return args.configs or [n for n in shipped if args.long or not n.endswith("_long")]


def main(argv: list[str] | None = None) -> int:
    from zoo.commands.cli import alias
    return alias("reproduce", argv)


if __name__ == "__main__":
    raise SystemExit(main())
