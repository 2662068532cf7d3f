"""Per-point time stamps in a .ts file (`@timeStamps true`) and what they mean to each consumer.

    (2007-01-01 00:00:00,241.97),(2007-01-01 00:01:00,241.75):(2007-01-01 00:00:00,0.5),(...):class

Every point is (time,value): a number, or an ISO 8601 date-time (read as seconds since the
epoch, UTC when it names no zone), one kind per file (zoo.data.validate.Timestamps). Channels of
a case are separated by `:` as without stamps and share their times (one time axis per case).
A series' times become offsets from its first point, date-times in data.time_unit, numbers as
they are: t_0 = 0, as irregular_periodic's series start.

    data.task=irregular        the batch irregular_periodic gives (zoo.data.irregular), for ode_rnn,
                               latent_ode and gru_gaps: x = {"t": [B, T], "values": [B, T, D],
                               "observed": [B, T]}, y = {"values", "interp", "extrap"}. The points
                               before data.context_fraction of each series' time span are context,
                               each observed with probability data.observed_fraction (the first
                               always; rng(data.seed) for the training file, rng(seed + 1) for the
                               test file) and the others interpolation targets; the later points
                               are extrapolation targets. A series with fewer than T points repeats
                               its last time and value, in none of the three sets: a gap of 0, so
                               the ODE models' state stands still there; no loss or metric counts
                               it (zoo.tasks.irregular averages over the three sets). data.standardize: `channel` (auto) by the
                               training file's per-channel mean and deviation; `series` each series
                               by its observed points only (no target sets its scale; noisy when a
                               series has few); `none`. A file without stamps (or a .tsv) reads
                               its step index as the time: 0, 1, 2, ...
    data.task=classification   every classifier reads one more channel, last: the gap to the
                               previous point (0 at the first), so a model without a time input
                               still sees when each value was taken.

Axis legend: N series, T the most points of a series in either file, D channels.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import zoo.data.irregular as irregular
import zoo.data.validate as validate
from zoo.errors import ConfigError

UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}
POINT, SEPARATOR = re.compile(r"\(([^()]*)\)"), re.compile(r"\s*([,:])\s*")


def read_case(s: str, file: Path, line: int, labelled: bool, clock: validate.Timestamps):
    """One data line of a timestamped .ts: (channels [T] float64 each, times [T] float64 offsets
    from the first point in the file's units (seconds for date-times), the label or None)."""
    channels: list[list[tuple[str, str]]] = [[]]
    pos, label = 0, None
    while True:
        m = POINT.match(s, pos)
        stamp, comma, value = m.group(1).rpartition(",") if m else ("", "", "")
        if not comma or not stamp.strip():
            bad = (m.group(0) if m else s[pos:]).strip()[:40]
            raise ConfigError(f"{file} line {line}: {bad!r} is not a (time,value) point; with @timeStamps true "
                              f"write every point as (time,value)")
        channels[-1].append((stamp, value))
        sep = SEPARATOR.match(s, m.end())
        if sep is None:
            pos = m.end()
            break
        pos = sep.end()
        if sep.group(1) == ":" and not s.startswith("(", pos):
            label, pos = s[pos:].strip(), len(s)
            break
        if sep.group(1) == ":":
            channels.append([])
    return _checked(channels, label, s[pos:], file, line, labelled, clock)


def _checked(channels, label, rest, file, line, labelled, clock):
    if rest.strip():
        raise ConfigError(f"{file} line {line}: {rest.strip()[:40]!r} after a point; separate points by ',' "
                          f"and channels by ':'")
    if labelled != (label is not None):
        fix = "a case is (time,value),...:class" if labelled else "the header says @classLabel false"
        raise ConfigError(f"{file} line {line}: {'no class after the points' if labelled else 'a class'}; {fix}")
    times = [clock.series([p[0] for p in c], line) for c in channels]
    for k, t in enumerate(times[1:], 2):
        if len(t) != len(times[0]) or (t != times[0]).any():
            raise ConfigError(f"{file} line {line}: channel {k}'s time stamps differ from channel 1's; give every "
                              f"channel of a case the same times (one time axis per case)")
    values = [_values([p[1] for p in c], file, line) for c in channels]
    return values, times[0] - times[0][0], label


def _values(cells: list[str], file: Path, line: int) -> np.ndarray:
    try:
        return np.array([float(c) for c in cells], np.float64)
    except ValueError:
        bad = next(c for c in cells if not validate._is_number(c))
        raise ConfigError(f"{file} line {line}: the value {bad.strip()!r} is not a number; give every point a "
                          f"number") from None


def in_unit(times: list[np.ndarray], kind: str | None, unit: str) -> list[np.ndarray]:
    """Offsets as the models read them: date-times in `unit`, numbers as they are."""
    return times if kind != "date-time" else [t / UNITS[unit] for t in times]


def with_gaps(values: list[np.ndarray], times: list[np.ndarray]) -> list[np.ndarray]:
    """Series [T_i, D] -> [T_i, D + 1]: the gap to the previous point (0 at the first) last."""
    return [np.concatenate([v, np.diff(t, prepend=t[:1])[:, None]], 1) for v, t in zip(values, times)]


# ----------------------------------------------------------------------------- data.task=irregular
def point_arrays(values: list[np.ndarray], times: list[np.ndarray], length: int, cfg, rng) -> dict:
    """One file's series as irregular_periodic's arrays: t [N, T], values [N, T, D], observed,
    interp, extrap [N, T]; shorter series repeat their last point, in no set."""
    n = np.array([len(t) for t in times])
    real = np.arange(length)[None, :] < n[:, None]
    last = np.minimum(np.arange(length)[None, :], n[:, None] - 1)          # [N, T]: the point each slot shows
    t = np.stack([tt[i] for tt, i in zip(times, last)])
    span = t[:, -1:]
    context = real & ((t < cfg.context_fraction * span) if cfg.context_fraction < 1 else True)
    sets = irregular.point_sets(context, cfg.observed_fraction, rng, real)
    v = np.stack([vv[i] for vv, i in zip(standardised(values, sets["observed"], cfg), last)])
    return {"t": t.astype(np.float32), "values": v.astype(np.float32), **sets}


def standardised(values: list[np.ndarray], observed: np.ndarray, cfg) -> list[np.ndarray]:
    """data.standardize for series whose later points are targets: `series` z-normalises each
    series by its observed points only (what the model reads; no target leaks into the scale)."""
    if cfg.standardize != "series":
        return values
    out = []
    for v, seen in zip(values, observed):
        fit = v[seen[:len(v)] > 0]
        std = fit.std(0)
        out.append((v - fit.mean(0)) / np.where(std > 0, std, 1.0))
    return out


def irregular_dataset(cfg, train, test, train_times, test_times) -> irregular.IrregularDataset:
    """data.task=irregular on a timestamped file pair (Series from zoo.data.timeseries)."""
    if cfg.val_size:
        raise ConfigError(f"data.val_size={cfg.val_size}: data.task=irregular holds out no validation series; "
                          f"set data.val_size=0")
    if not 0 < cfg.observed_fraction <= 1 or not 0 < cfg.context_fraction <= 1:
        raise ConfigError(f"data.observed_fraction={cfg.observed_fraction} and data.context_fraction="
                          f"{cfg.context_fraction} must be in (0, 1]")
    length = max(len(t) for t in train_times + test_times)
    pre = {"format": "ts", "task": "irregular", "timestamps": train.time_kind, "time_unit": cfg.time_unit,
           "input_shape": [length, train.values[0].shape[1]]}
    if cfg.standardize == "channel":
        steps = np.concatenate(train.values)
        std = steps.std(0)
        pre["value_statistics"] = {"mean": steps.mean(0).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}
    arrays = []
    for k, (series, times) in enumerate([(train, train_times), (test, test_times)]):
        values = series.values
        if cfg.standardize == "channel":
            values = [(v - pre["value_statistics"]["mean"]) / pre["value_statistics"]["std"] for v in values]
        arrays.append(point_arrays(values, times, length, cfg, np.random.default_rng(cfg.seed + k)))
    return irregular.IrregularDataset(task="irregular", model_defaults={"num_outputs": train.values[0].shape[1]},
                                      preprocessing=pre, train=arrays[0], test=arrays[1])
