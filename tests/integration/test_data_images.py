"""data.name=image_folder: class sub-folders of PNG/JPEG/BMP, decoded once into a cache keyed
by the files, split per class or by train/ and test/ folders; the CNN learns the digits."""
import os
import re

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from zoo import config, train
from zoo import experiment as ex
from zoo.commands.cli import alias
from zoo.data import examples, images, inputs


def _folder(root, sizes, mode="RGB", seed=0, per_class=4, names=None):
    """Random images root/<class>/<i>.png, one size per class from `sizes`."""
    rng = np.random.default_rng(seed)
    for c, (h, w) in enumerate(sizes):
        folder = root / (names[c] if names else f"class{c}")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (h, w, 3) if mode == "RGB" else (h, w)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def _cfg(root, cache, *overrides):
    return images.ImageFolderConfig(path=str(root), cache_dir=str(cache), **dict(overrides))


def test_the_cnn_learns_the_digits_from_png_files(tmp_path):
    examples.digits_png(tmp_path / "digits")
    cfg = config.load(ROOT / "configs" / "digits_folder_cnn.yaml",
                      [f"data.path={tmp_path / 'digits'}", f"data.cache_dir={tmp_path / 'cache'}", "train.steps=300",
                       "train.eval_every=0", f"run.dir={tmp_path / 'runs'}", "run.plots=false"])
    summary = train.fit(cfg)
    assert summary["eval_accuracy"] >= 0.9
    ds = ex.build(cfg).dataset
    assert ds.preprocessing["class_names"] == [str(d) for d in range(10)] and ds.preprocessing["mode"] == "L"
    assert ex.train_batch(ex.build(cfg), 0)["x"].shape == (64, 8, 8, 1)


def test_images_decode_once_into_a_cache_keyed_by_the_files(tmp_path):
    root = _folder(tmp_path / "imgs", [(6, 5), (6, 5)])
    cfg = _cfg(root, tmp_path / "cache")
    first = images.load(cfg)
    cached = list((tmp_path / "cache" / "image_folder").glob("*.npz"))
    assert len(cached) == 1
    # same name, size and modification time but unreadable bytes: a decode would fail, the cache is read
    victim = root / "class0" / "0.png"
    stat = victim.stat()
    victim.write_bytes(b"x" * stat.st_size)
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = images.load(cfg)
    np.testing.assert_array_equal(first.train["x"][np.arange(4)], again.train["x"][np.arange(4)])
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))   # touched: decoded afresh
    with pytest.raises(config.ConfigError, match="0.png: cannot read this image"):
        images.load(cfg)


def test_colour_images_are_resized_channels_last_in_unit_range_and_split_per_class(tmp_path):
    root = _folder(tmp_path / "imgs", [(10, 7), (5, 12), (8, 8)], per_class=10)
    ds = images.load(_cfg(root, tmp_path / "cache", ("image_size", (6, 4)), ("val_size", 3)))
    batch = ds.train_batch(0, 0, 5)
    assert batch["x"].shape == (5, 6, 4, 3) and batch["x"].dtype == np.float32
    assert 0.0 <= batch["x"].min() and batch["x"].max() <= 1.0
    assert sorted(np.bincount(ds.test["y"]).tolist()) == [2, 2, 2] and len(ds.val["y"]) == 3
    assert ds.model_defaults == {"num_outputs": 3} and ds.preprocessing["mode"] == "RGB"
    np.testing.assert_allclose(inputs.read_inputs(root / "class1" / "0.png", ds.preprocessing).x[0],
                               np.asarray(Image.open(root / "class1" / "0.png").resize((4, 6), Image.BILINEAR)) / 255,
                               rtol=1e-6)


def test_train_and_test_folders_give_the_split(tmp_path):
    _folder(tmp_path / "imgs" / "train", [(4, 4), (4, 4)], mode="L", per_class=3)
    _folder(tmp_path / "imgs" / "test", [(4, 4)], mode="L", per_class=2, seed=1)
    ds = images.load(_cfg(tmp_path / "imgs", tmp_path / "cache"))
    assert len(ds.train["y"]) == 6 and ds.test["y"].tolist() == [0, 0]
    assert ds.preprocessing["input_shape"] == [4, 4, 1]


def _png_claiming(width, height) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb's header; no pixels needed)."""
    import io
    import struct
    import zlib
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, "PNG")
    png = bytearray(buf.getvalue())
    ihdr = png[12:29]                                     # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    png[12:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(png)


def test_sixteen_bit_greys_are_scaled_not_clipped(tmp_path):
    """A 16-bit PNG's mid grey is 0.5, not 1.0 (Pillow's convert("L") clips at 255)."""
    for c, level in enumerate([1000, 32768]):
        (tmp_path / "imgs" / f"c{c}").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((4, 4), level + i, np.uint16)).save(tmp_path / "imgs" / f"c{c}" / f"{i}.png")
    with Image.open(tmp_path / "imgs" / "c1" / "0.png") as image:
        assert image.mode.startswith("I")
    ds = images.load(_cfg(tmp_path / "imgs", tmp_path / "cache", ("test_fraction", 0.34)))
    x = np.concatenate([ds.train["x"][np.arange(len(ds.train["y"]))], ds.test["x"][np.arange(len(ds.test["y"]))]])
    y = np.concatenate([ds.train["y"], ds.test["y"]])
    np.testing.assert_allclose(x[y == 1].mean(), 0.5, atol=0.01)
    np.testing.assert_allclose(x[y == 0].mean(), 1000 / 65535, atol=0.01)


def test_predict_on_a_folder_writes_each_images_path_and_class_name(tmp_path, capsys):
    root = _folder(tmp_path / "imgs", [(4, 4), (4, 4)], names=["cat", "dog"], per_class=5)
    code = alias("train", ["model.name=mlp", "model.width=4", "data.name=image_folder", f"data.path={root}",
                           f"data.cache_dir={tmp_path / 'c'}", f"run.dir={tmp_path / 'runs'}", "run.name=r",
                           "train.steps=2", "train.batch_size=4", "train.eval_batch_size=4", "run.plots=false"])
    assert code == 0
    code = alias("predict", [str(tmp_path / "runs" / "r"), "--input", str(root / "dog"), "--output", str(tmp_path / "p.csv")])
    assert code == 0, capsys.readouterr().err
    rows = [r.split(",") for r in (tmp_path / "p.csv").read_text().splitlines()]
    assert rows[0][:3] == ["path", "class", "class_name"] and rows[0][3:] == ["probabilities_cat", "probabilities_dog"]
    assert [r[0] for r in rows[1:]] == [str(root / "dog" / f"{i}.png") for i in range(5)]
    assert all(r[2] == ["cat", "dog"][int(r[1])] for r in rows[1:])


@pytest.mark.parametrize("case, message", [
    ("empty", "has no sub-folders"),
    ("one_class", "has one class folder"),
    ("no_images", "holds no .png/.jpg/.jpeg/.bmp images"),
    ("unreadable", "bad.png: cannot read this image"),
    ("sizes", "set data.image_size=\\[H, W\\]"),
    ("test_class", "test has classes owl that .*train lacks"),
    ("bomb", "bomb.png: cannot read this image \\(Image size \\(400000000 pixels\\) exceeds limit"),
    ("large", "large.png: 9000x9000 pixels, more than zoo decodes \\(67108864 pixels\\)"),
])
def test_bad_folders_are_one_line_exit_2_and_no_run_directory(tmp_path, capsys, case, message):
    root = tmp_path / "imgs"
    root.mkdir()
    if case == "one_class":
        _folder(root, [(4, 4)])
    elif case == "no_images":
        _folder(root, [(4, 4)])
        (root / "other").mkdir()
        (root / "other" / "notes.txt").write_text("hello")
    elif case == "unreadable":
        _folder(root, [(4, 4), (4, 4)])
        (root / "class1" / "bad.png").write_bytes(b"not an image")
    elif case == "sizes":
        _folder(root, [(4, 4), (5, 4)])
    elif case == "test_class":
        _folder(root / "train", [(4, 4), (4, 4)], names=["cat", "dog"])
        _folder(root / "test", [(4, 4), (4, 4)], names=["cat", "owl"])
    elif case == "bomb":
        _folder(root, [(4, 4), (4, 4)])
        (root / "class1" / "bomb.png").write_bytes(_png_claiming(20000, 20000))
    elif case == "large":
        _folder(root, [(4, 4), (4, 4)])
        (root / "class1" / "large.png").write_bytes(_png_claiming(9000, 9000))
    code = alias("train", ["model.name=mlp", "data.name=image_folder", f"data.path={root}", f"data.cache_dir={tmp_path / 'c'}",
                 f"run.dir={tmp_path / 'runs'}", "train.steps=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "runs").exists()
