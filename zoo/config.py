"""Experiment configs from files: a YAML file and dotted overrides, validated into the typed
Config of zoo.schema; the configs shipped with zoo, by name; a run's own config.yaml, and what a
resume may change in it.

    cfg = load("configs/mnist1d_cnn.yaml", ["train.steps=2000", "optimizer.learning_rate=3e-3"])

Sections: `model` and `data` (a `name` from the registries plus that entry's own fields),
`optimizer`, `train`, `run`, `mesh`. Overrides are dotted `key=value`, read with YAML typing.
The declared type of a field wins over YAML 1.1's guesses: a `str` field keeps `yes` or
`1.10` as written, a `float` field reads `1e-3` (which YAML 1.1 calls a string) as 0.001.
Every mistake raises ConfigError with one line naming the key, what was expected and the
closest valid key; nothing has been built or compiled when it is raised.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
from pathlib import Path

from zoo.errors import ConfigError
from zoo.schema import SECTIONS, Config, from_tree, set_dotted
from zoo.typed_yaml import MAX_BYTES, Raw, closest, parse


# ----------------------------------------------------------------------------- loading
def read_yaml(path: str | Path) -> dict:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; give the path of a YAML file "
                          f"such as configs/mnist1d_cnn.yaml")
    if file.stat().st_size > MAX_BYTES:
        raise ConfigError(f"{path}: {file.stat().st_size} bytes, larger than {MAX_BYTES >> 20} MiB; a config "
                          f"holds settings, put data in a file and give its path")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    tree = parse(text, str(path))
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    return tree


def apply_override(tree: dict, override: str) -> None:
    """Set `a.b.c=value` in the parsed tree; the value is read as YAML."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not key=value; write e.g. train.steps=2000")
    parts = key.strip().split(".")
    if parts[0] not in SECTIONS:
        raise ConfigError(f"override {key!r}: unknown section {parts[0]!r}{closest(parts[0], list(SECTIONS))}")
    if not text.strip() and _names_a_path(parts[-1]):  # `data.path=$DATA` with $DATA unset
        raise ConfigError(f"override {key.strip()}= is empty (an unset shell variable?); give the path, or "
                          f"{key.strip()}=null for the default")
    set_dotted(tree, key.strip(), parse(text, f"override {key}") if text.strip() else Raw(""))


def _names_a_path(field: str) -> bool:
    """Keys whose empty value would silently read something else (the built-in corpus, no
    fine-tuning source, the current folder) rather than fail."""
    return field in ("path", "dir", "init_from", "cache_dir") or field.endswith("_path")


PACKAGE = Path(__file__).resolve().parent


def resolve_shipped_files(tree: dict, source: Path) -> None:
    """A data path in a config file that names a file shipped inside the zoo package, relative
    to the config's own folder (a shipped config's `../data/files/tinyshakespeare.txt`), becomes
    that file's absolute path, so the config runs from any folder. Every other relative path is
    the user's, read from the folder zoo runs in."""
    data = tree.get("data")
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if str(key).endswith("path") and isinstance(value, str) and not Path(value).expanduser().is_absolute():
            file = (source.parent / value).resolve()
            if file.is_relative_to(PACKAGE) and file.exists():
                data[key] = str(file)


def load(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config, apply dotted overrides, validate every section. An override that
    changes model.name (data.name) starts that section afresh from the new model's defaults."""
    tree = read_yaml(path) if path is not None else {}
    if path is not None:
        resolve_shipped_files(tree, Path(path))
    names = {key.strip(): value.strip() for key, _, value in (o.partition("=") for o in overrides)}
    for section in ("model", "data"):
        # `model.name=gru` on a CNN config: the file's other model keys belong to the CNN, drop them
        file_section = tree.get(section)
        renamed = names.get(f"{section}.name")
        if renamed is not None and isinstance(file_section, dict) and str(file_section.get("name")) != renamed:
            tree[section] = {}
    for override in overrides:
        apply_override(tree, override)
    cfg = from_tree(tree, str(path) if path is not None else None)
    if cfg.run.name is None:
        cfg = cfg.replace(run=dataclasses.replace(cfg.run, name=default_run_name(cfg, path, "data.path" in names)))
    return cfg


def default_run_name(cfg: Config, path: str | Path | None, own_data: bool) -> str:
    """run.name when none is set: the config file's stem, or, for a run on a file the user gave
    on the command line (data.path=iris.csv), that file's name and the model: iris_mlp."""
    data_path = getattr(cfg.data, "path", None)
    if own_data and isinstance(data_path, str):
        file = Path(data_path.rstrip("/\\"))
        stem = file.parent.name if any(c in file.name for c in "*?[") else file.stem  # books/*.txt: books
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
        if stem:
            return f"{stem}_{cfg.model_name}"
    return Path(path).stem if path else cfg.model_name


# ----------------------------------------------------------------------------- shipped configs, runs' configs
SHIPPED = Path(__file__).resolve().parent / "configs"  # package data: found from any folder


def shipped_configs() -> dict[str, Path]:
    """Every config shipped with the package, by name."""
    return {p.stem: p for p in sorted(SHIPPED.glob("*.yaml"))}


def config_path(name_or_path: str) -> Path:
    """A config file by path, or a shipped config by name; ConfigError listing the names."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    if name_or_path.removesuffix(".yaml") in shipped:
        return shipped[name_or_path.removesuffix(".yaml")]
    close = difflib.get_close_matches(Path(name_or_path).stem, list(shipped), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"config file {name_or_path!r} not found, and no shipped config has that name{hint}; "
                      f"shipped: {', '.join(shipped)}")


def example_command(path: Path) -> list[str] | None:
    """The `python -m zoo.data.examples KIND OUT` arguments [KIND, OUT] a config's header comment
    says to run before it (a shipped config that shows reading your own file), or None."""
    for line in Path(path).read_text().splitlines():
        if not line.startswith("#"):
            return None
        if "python -m zoo.data.examples " in line:
            return line.split("python -m zoo.data.examples ", 1)[1].split()[:2]
    return None


def check_example_file(cfg: Config) -> None:
    """A shipped config that reads an example file the user makes first (wine_csv_mlp reads
    data/wine.csv): if the file is not there, one line with the command that writes it."""
    source = Path(cfg.source) if cfg.source else None
    if source is None or source.resolve().parent != SHIPPED:
        return
    command = example_command(source)
    path = getattr(cfg.data, "path", None)
    if command and path == command[1] and not Path(path).exists():
        raise ConfigError(f"data.path={path}: no such file or folder here; {source.stem} trains on an example "
                          f"file you make first: python -m zoo.data.examples {' '.join(command)} (or set "
                          f"data.path to your own file)")


def check_init_from(cfg: Config) -> None:
    """A fine-tuning run's source (train.init_from) must be a trained run: if it is not, say what
    to train first, in one line, before anything is built."""
    source = cfg.train.init_from
    if source is None or cfg.run.resume or (Path(source) / "config.yaml").is_file():
        return
    name = Path(source).name
    first = f"train it first (zoo train {name} writes runs/{name}), or " if name in shipped_configs() else ""
    raise ConfigError(f"train.init_from={source} is not a run directory (no config.yaml there) to fine-tune "
                      f"from: {first}point train.init_from at a trained run, or set train.init_from=null "
                      f"to start from scratch")


def load_run_config(run_dir: str | Path, overrides: list[str] = ()) -> Config:
    """The config a run directory was trained with (its config.yaml), pointed at that directory
    wherever it now lives; ConfigError when the directory is not a run."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a run directory (it has no config.yaml); give a directory that "
                          f"training wrote: runs/NAME, as `zoo train NAME` prints at its end")
    return load(run_dir / "config.yaml", [f"run.dir={run_dir.parent}", f"run.name={run_dir.name}", *overrides])


# ----------------------------------------------------------------------------- resuming
# What a resumed run may change and still end bit for bit as if it had never stopped: how long
# it trains and how it reports, never what it computes (model, data and their order, optimizer).
RESUMABLE = ("train.steps", "train.eval_every", "train.eval_batch_size", "train.eval_batches",
             "train.log_every", "train.checkpoint_every", "train.keep_checkpoints", "train.patience",
             "train.max_bad_steps", "run.", "mesh.")


def resume_changes(stored: Config, requested: Config) -> list[str]:
    """The settings `requested` changes from a run's `stored` config that a resume cannot
    continue exactly, as ["optimizer.learning_rate: 0.001 -> 0.01", ...]."""
    old, new = (_flat(with_absolute_paths(c).to_dict()) for c in (stored, requested))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k) and not _resumable(k)]


def with_absolute_paths(cfg: Config) -> Config:
    """`cfg` with its relative file paths (the data section's path keys, train.init_from) made
    absolute from the folder zoo runs in. A run's config.yaml stores these, so that load_run, a
    resume or a fine-tune started from another folder reads the files the run was trained on."""
    def absolute(value):
        return os.path.abspath(os.path.expanduser(value)) if isinstance(value, str) and value else value

    data = cfg.data
    if dataclasses.is_dataclass(data):   # a plugin's data section is its own
        data = dataclasses.replace(data, **{f.name: absolute(getattr(data, f.name))
                                            for f in dataclasses.fields(data) if _names_a_path(f.name)})
    return cfg.replace(data=data, train=dataclasses.replace(cfg.train, init_from=absolute(cfg.train.init_from)))


def _resumable(key: str) -> bool:
    """A key RESUMABLE names, or one inside a section it names ("run.")."""
    return key in RESUMABLE or key.startswith(tuple(p for p in RESUMABLE if p.endswith(".")))


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and not prefix.endswith("kwargs."):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
