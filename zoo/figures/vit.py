"""What a trained ViT looks at: RUN_DIR/cls_attention.png, for the first few test images, the
image and the CLS token's attention over its patches in each block (mean over heads).

    python -m zoo.figures.vit RUN_DIR      # redraws it from the run's checkpoint
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

FILENAME = "cls_attention.png"


def plot_cls_attention(path: Path | str, images: np.ndarray, maps: np.ndarray, labels: np.ndarray) -> Path:
    """images [B, H, W, C] in [0, 1], maps [B, L, H/P, W/P], labels [B] -> the PNG at `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, layers = maps.shape[0], maps.shape[1]
    fig, axes = plt.subplots(rows, layers + 1, figsize=(1.6 * (layers + 1), 1.6 * rows), squeeze=False)
    for i in range(rows):
        axes[i, 0].imshow(images[i].mean(-1), cmap="gray_r")
        axes[i, 0].set_title(f"label {labels[i]}", fontsize=8)
        for layer in range(layers):
            axes[i, layer + 1].imshow(maps[i, layer], cmap="viridis")
            if i == 0:
                axes[i, layer + 1].set_title(f"block {layer + 1}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("CLS token's attention over the patches (mean over heads)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def cls_attention(run, count: int = 6) -> Path | None:
    """The post-training hook: the figure of `count` test images (none for mean pooling)."""
    from zoo.models import vit

    cfg = run.exp.cfg.model
    if cfg.pooling != "cls":
        return None
    x = np.asarray(run.exp.dataset.test["x"][:count], np.float32)
    x = x[..., None] if x.ndim == 3 else x
    maps = np.asarray(vit.cls_attention(cfg, run.params, x))                   # [B, L, N]
    grid = (x.shape[1] // cfg.patch_size, x.shape[2] // cfg.patch_size)
    return plot_cls_attention(Path(run.run_dir) / FILENAME, x, maps.reshape(*maps.shape[:2], *grid),
                              np.asarray(run.exp.dataset.test["y"][:count]))



def main(argv: list[str] | None = None) -> int:
    from zoo.experiment import load_run

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m zoo.figures.vit RUN_DIR", file=sys.stderr)
        return 2
    path = cls_attention(load_run(argv[0]))
    print(path if path else "no figure: the run pools by mean, not a CLS token")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
