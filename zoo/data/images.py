"""`image_folder`: the user's images, one sub-folder per class, read with Pillow.

    data.path=pets/          pets/cat/*.png, pets/dog/*.jpg, ...   (a held-out split per class)
    data.path=pets/          pets/train/cat/..., pets/test/cat/... (the folders' own split)

PNG, JPEG and BMP files (by suffix; other files are ignored) become channels-last images
[N, H, W, C] (B H W C for a batch), floats in [0, 1]: resized to data.image_size = [H, W]
(bilinear) or, without it, all of one size; C = 1 for data.mode=L (grey), 3 for RGB, and with
"auto" 1 when every image is grey. Class k is the k-th sub-folder name in sorted order; the
names are in `preprocessing["class_names"]`, which the trainer stores in the run directory.
Without train/ and test/ sub-folders, round(data.test_fraction * n_c) images of each class c
are held out at random from data.split_seed; data.val_size moves the last training images to
a validation split, as for MNIST-1D.

Decoding happens once: the 8-bit pixels are cached as an .npz (no pickle) in
data.cache_dir (default $ZOO_CACHE or ~/.cache/zoo) under image_folder/, named by a hash of
every file's path, size and modification time and of image_size and mode, so a changed,
added or removed image decodes the folder afresh. Old cache files are never read again and
may be deleted at any time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

import zoo.data.preprocess as preprocess
import zoo.data.tables as tables
import zoo.data.validate as validate
from zoo.data.base import ArrayDataset, Rows, held_out
from zoo.errors import ConfigError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
GREY_MODES = ("1", "L", "LA")
WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I")


@dataclasses.dataclass(frozen=True)
class ImageFolderConfig:
    path: str | None = None              # a folder of class sub-folders (or of train/ and test/ ones)
    image_size: tuple[int, ...] = ()     # [H, W] every image is resized to; (): as stored, all one size
    mode: Literal["auto", "L", "RGB"] = "auto"  # L: grey, 1 channel; RGB: 3; auto: L if every image is grey
    test_fraction: float = 0.2           # per class, when there are no train/ and test/ folders
    split_seed: int = 0
    val_size: int = 0                    # the last N training images validate (train.select)
    cache_dir: str | None = None         # decoded images; None: $ZOO_CACHE or ~/.cache/zoo


# ----------------------------------------------------------------------------- listing
def image_files(folder: Path) -> list[Path]:
    """The images under `folder` (any depth), sorted, hidden files skipped."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def class_folders(root: Path, min_classes: int = 2) -> dict[str, list[Path]]:
    """{class name: its images} for every sub-folder of `root`, in sorted order."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = {p.name: image_files(p) for p in folders}
    if not classes:
        raise ConfigError(f"{root} has no sub-folders; put each class's images in a sub-folder named after it")
    for name, files in classes.items():
        if not files:
            raise ConfigError(f"{root / name} holds no {'/'.join(SUFFIXES)} images; add some or remove the folder")
    if len(classes) < min_classes:
        raise ConfigError(f"{root} has one class folder ({next(iter(classes))}); classification needs two or more")
    return classes


def splits(root: Path) -> dict[str, dict[str, list[Path]]]:
    """{"all": classes} or, with train/ and test/ sub-folders, {"train": ..., "test": ...}."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        found = {"train": class_folders(root / "train"), "test": class_folders(root / "test", 1)}
        unknown = sorted(set(found["test"]) - set(found["train"]))
        if unknown:
            raise ConfigError(f"{root / 'test'} has classes {', '.join(unknown)} that {root / 'train'} lacks; "
                              f"give every test class training images")
        return found
    return {"all": class_folders(root)}


# ----------------------------------------------------------------------------- decoding
def _open(file: Path):
    """The decoded image, its size checked (validate.image_size) before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():  # Pillow's warning of a large image: ours is the refusal
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file)
        try:
            validate.image_size(file, *image.size)
            image.load()
        except BaseException:
            image.close()
            raise
        return image
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise ConfigError(f"{file}: cannot read this image ({e}); replace or remove the file") from None


def auto_mode(files: list[Path]) -> str:
    """L if every image is grey, else RGB (reads headers only)."""
    from PIL import Image, UnidentifiedImageError
    for file in files:
        try:
            with Image.open(file) as image:
                if image.mode not in GREY_MODES + WIDE_GREY_MODES:
                    return "RGB"
        except (UnidentifiedImageError, OSError) as e:
            raise ConfigError(f"{file}: cannot read this image ({e}); replace or remove the file") from None
    return "L"


def eight_bit(image):
    """16- and 32-bit grey images (PNG "I;16", "I") scaled to 8 bits: Pillow's convert("L")
    clips them at 255 instead, which makes most of a 16-bit image white."""
    from PIL import Image
    if image.mode not in WIDE_GREY_MODES:
        return image
    pixels = np.asarray(image).astype(np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or pixels.max(initial=0) <= 65535 else float(pixels.max())
    return Image.fromarray(np.round(np.clip(pixels, 0, top) * (255.0 / top)).astype(np.uint8), "L")


def decode(files: list[Path], size: tuple[int, ...], mode: str) -> np.ndarray:
    """uint8 images [N, H, W, C] in `mode`, resized to size = (H, W) unless size is ()."""
    from PIL import Image

    out = []
    for file in files:
        image = eight_bit(_open(file)).convert(mode)
        if size and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.BILINEAR)
        pixels = np.asarray(image, np.uint8)
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        if out and pixels.shape != out[0].shape:
            raise ConfigError(f"{file} is {pixels.shape[1]}x{pixels.shape[0]} but {files[0]} is "
                              f"{out[0].shape[1]}x{out[0].shape[0]}; set data.image_size=[H, W] to resize them all")
        out.append(pixels)
    return np.stack(out)


def input_files(path: Path) -> list[Path]:
    """One image file, or every image under a folder (sorted)."""
    files = [path] if path.is_file() else image_files(path)
    if not files:
        raise ConfigError(f"{path} holds no {'/'.join(SUFFIXES)} images")
    return files


# ----------------------------------------------------------------------------- the cache
def _cache_file(cfg: ImageFolderConfig, root: Path, files: list[Path]) -> Path:
    stamp = [(str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = json.dumps([stamp, list(cfg.image_size), cfg.mode, 2])   # 2: this cache layout (16-bit scaled)
    base = Path(cfg.cache_dir or os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "zoo")).expanduser()
    return base / "image_folder" / f"{root.name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


def decoded(cfg: ImageFolderConfig, root: Path) -> dict[str, np.ndarray]:
    """x uint8 [N, H, W, C], y int32 [N], test bool [N] (the test/ folder's images),
    class_names [K], mode []: from the cache, or decoded and cached."""
    parts = splits(root)
    names = sorted(parts.get("train", parts.get("all")))
    listed = [(f, names.index(c), part == "test") for part, classes in parts.items()
              for c, files in classes.items() for f in files]
    files = [f for f, _, _ in listed]
    cache = _cache_file(cfg, root, files)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as f:
            return dict(f)
    mode = auto_mode(files) if cfg.mode == "auto" else cfg.mode
    arrays = {"x": decode(files, cfg.image_size, mode), "y": np.array([c for _, c, _ in listed], np.int32),
              "test": np.array([t for _, _, t in listed], bool), "class_names": np.array(names), "mode": np.array(mode)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, cache)   # atomic: a concurrent run never reads half a file
    return arrays


# ----------------------------------------------------------------------------- the dataset
def load(cfg: ImageFolderConfig) -> ArrayDataset:
    root = tables.existing_file(cfg.path, what="a folder with one sub-folder of images per class")
    if not root.is_dir():
        raise ConfigError(f"data.path={cfg.path!r} is a file; give a folder with one sub-folder of images per class")
    if cfg.image_size and (len(cfg.image_size) != 2 or min(cfg.image_size) < 1):
        raise ConfigError(f"data.image_size={list(cfg.image_size)}: give [height, width], both positive")
    a = decoded(cfg, root)
    if a["test"].any():
        train, test = np.flatnonzero(~a["test"]), np.flatnonzero(a["test"])
    elif 0 < cfg.test_fraction < 1:
        train, test = held_out(len(a["y"]), cfg.test_fraction, cfg.split_seed, a["y"])
    else:
        raise ConfigError(f"data.test_fraction={cfg.test_fraction} must be in (0, 1): {root} has no test/ folder")
    if not 0 <= cfg.val_size < len(train):
        raise ConfigError(f"data.val_size={cfg.val_size} must be in [0, {len(train)}) (the training images)")
    h, w, c = a["x"].shape[1:]
    pre = {"format": "image_folder", "input_shape": [h, w, c], "dtype": "float32", "scale": 1 / 255,
           "image_size": [h, w], "mode": str(a["mode"]), "class_names": [str(n) for n in a["class_names"]],
           "task": "classification"}
    apply = preprocess.transform(pre)
    return ArrayDataset(task="classification", model_defaults={"num_outputs": len(a["class_names"])},
                        preprocessing=pre, train={"x": Rows(a["x"], train, apply), "y": a["y"][train]},
                        test={"x": Rows(a["x"], test, apply), "y": a["y"][test]}).hold_out(cfg.val_size)
