"""`zoo summary CONFIG|NAME [key=value ...] [--json]`: what a config trains, before training:
each parameter's path, shape, dtype, count and sharding on the config's mesh; totals; FLOPs,
bytes and memory of one train step and one forward pass, from the compiled programs.

Nothing is placed on a device and nothing trains; the parameter count is the one training
reports in summary.json.
"""
from __future__ import annotations

import argparse
import json


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("summary", help="parameters, FLOPs and memory of a config's train step",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="YAML file or shipped config name, e.g. mnist1d_cnn")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. model.d_model=256")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from zoo import config
    from zoo import experiment as ex
    from zoo.config import config_path
    from zoo.summary import summarize

    exp = ex.build(config.load(config_path(args.config), args.overrides))
    summary = summarize(exp)
    print(json.dumps(summary, indent=2) if args.json else "\n".join(report(summary)))
    return 0


def size(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M' (k, M, G, T steps of 1000)."""
    for prefix in ("", "k", "M", "G", "T"):
        if abs(n) < 1000 or prefix == "T":
            return f"{n:.3g} {prefix}{unit}".rstrip()
        n /= 1000
    return str(n)


def report(s: dict) -> list[str]:
    """The summary as lines: the parameter table, totals, step costs and memory."""
    rows = [(r["path"], "x".join(map(str, r["shape"])) or "scalar", r["dtype"], f"{r['count']:,}", r["sharding"])
            for r in s["parameters"]]
    header = ("parameter", "shape", "dtype", "count", "sharding")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i != 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out = [f"{s['model']} on {s['data']}, mesh {s['mesh']} ({s['devices']} devices)", "",
           line(header), line(["-" * w for w in widths]), *map(line, rows), "",
           f"total: {s['params']:,} parameters, {size(s['param_bytes'], 'B')}"]
    for name in ("train_step", "forward"):
        c, memory = s[name], s[name].get("memory", {})
        out.append(f"{name}: {size(c['flops'], 'FLOP')}, {size(c['bytes_accessed'], 'B')} accessed per device; "
                   + ", ".join(f"{k} {size(v, 'B')}" for k, v in memory.items()))
    if s["tokens_per_step"]:
        out.append(f"tokens per step: {s['tokens_per_step']:,}")
    if "cache_bytes" in s:
        out.append(f"decoding cache: {size(s['cache_bytes'], 'B')} per sequence of {s['cache_positions']:,} positions")
    if "seconds_per_step_at_peak" in s:
        out.append(f"at the devices' peak ({size(s['peak_flops_per_s'], 'FLOP/s')}) a train step takes "
                   f">= {s['seconds_per_step_at_peak'] * 1e3:.3g} ms")
        out.append(f"peak: {s['peak_source']}")
    return out
