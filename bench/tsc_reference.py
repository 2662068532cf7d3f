"""dl-4-tsc's FCN and ResNet in PyTorch on the UCR files zoo ships: which of normalisation and
schedule is zoo's gap to Fawaz et al. 2019 (issue #27)?

    python -m bench.tsc_reference --dataset ArrowHead --norm batch --schedule zoo --seeds 0 1 2
    python -m bench.tsc_reference --dataset ArrowHead --norm channel --schedule zoo --seeds 0 1 2
    python -m bench.tsc_reference --dataset ArrowHead --norm batch --schedule dl4tsc --epochs 2000
    python -m bench.tsc_reference --model resnet --norm batch --schedule dl4tsc --epochs 400

The model is hfawaz/dl-4-tsc's classifiers/fcn.py: Conv1d 128-256-128 (kernels 8-5-3, padding
same), each followed by a norm and ReLU, global average pooling, a linear softmax layer; Glorot
uniform weights and zero biases, as Keras initialises them. `--model resnet` is
classifiers/resnet.py: three residual blocks (64, 128, 128 channels) of conv8-norm-relu,
conv5-norm-relu, conv3-norm, added to the shortcut (a 1x1 conv and a norm where the channels
change, else a norm alone) and rectified; global average pooling; its batch cap is 64, not 16.
The series are read with zoo's own reader (zoo.data.timeseries) and z-normalised per series, as
both zoo's configs and dl-4-tsc do.

    --norm batch     BatchNorm1d as Keras' (momentum 0.99, eps 1e-3); tested with its running
                     statistics, and also (in brackets) with statistics recomputed over the whole
                     training set with the final weights, and with the whole test set's own batch
                     statistics (transductive: a diagnostic, not a usable test protocol)
    --norm channel   GroupNorm of one channel per group (per-sample statistics over time: zoo's
                     `model.norm: group` with one group per channel; --groups G for other counts)
    --norm none      no normalisation
    --schedule zoo     --steps (500) Adam steps of batch --batch (16), learning rate 1e-3 decayed to
                       0 by a cosine; the final model is tested
    --schedule dl4tsc  --epochs epochs (fcn.py: 2000) of batch int(min(n_train / 10, cap)), shuffled
                       each epoch, Adam 1e-3 (eps 1e-7), ReduceLROnPlateau on the epoch's mean
                       training loss (factor 0.5, patience 50, min 1e-4, abs delta 1e-4); the model
                       of least training loss is tested (fcn.py's ModelCheckpoint on `loss`)

It prints one line per seed (test accuracy, final training loss, wall time) and the mean. PyTorch
runs with --threads threads (default 1).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from zoo.data import timeseries as ts

UCR = Path(__file__).resolve().parent.parent / "zoo" / "data" / "files" / "ucr"


def load(dataset: str):
    """(x_train [N, 1, T], y_train [N], x_test, y_test) float32/int64, z-normalised per series."""
    train = ts.read_file(UCR / dataset / f"{dataset}_TRAIN.ts")
    test = ts.read_file(UCR / dataset / f"{dataset}_TEST.ts")
    names = ts.class_names(train, test)
    length = max(len(v) for v in train.values + test.values)
    out = []
    for split in (train, test):
        x, _ = ts.padded(ts.znormalised(split.values), length)
        y = np.array([names.index(s) for s in split.labels], np.int64)
        out += [torch.from_numpy(x).transpose(1, 2).contiguous(), torch.from_numpy(y)]
    return (*out, len(names))


INIT = {"glorot": nn.init.xavier_uniform_,   # Keras' default, dl-4-tsc's
        "lecun": lambda w: nn.init.normal_(w, 0.0, (w[0].numel()) ** -0.5)}   # zoo's: N(0, 1 / fan_in)


@dataclasses.dataclass(frozen=True)
class Layers:
    """The layer choices a run compares: --norm, --groups, --init and --shortcut."""
    norm: str
    groups: int | None = None      # channel norm: groups per layer (None: one per channel)
    init: str = "glorot"
    shortcut_norm: bool = True     # resnet: normalise an unchanged-channel shortcut (dl-4-tsc; zoo: no)

    def norm_layer(self, channels: int) -> nn.Module:
        if self.norm == "batch":
            return nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)
        if self.norm == "channel":
            return nn.GroupNorm(min(self.groups, channels) if self.groups else channels, channels, eps=1e-5)
        return nn.Identity()

    def conv(self, c_in: int, c_out: int, k: int) -> nn.Conv1d:
        """Keras' Conv1D(padding='same'): Glorot uniform weights (--init), zero bias."""
        conv = nn.Conv1d(c_in, c_out, k, padding="same")  # Keras same: (k - 1) // 2 before
        INIT[self.init](conv.weight)
        nn.init.zeros_(conv.bias)
        return conv


def keras_dense(c_in: int, c_out: int) -> nn.Linear:
    """Keras' Dense: Glorot uniform weights, zero bias."""
    dense = nn.Linear(c_in, c_out)
    nn.init.xavier_uniform_(dense.weight)
    nn.init.zeros_(dense.bias)
    return dense


class FCN(nn.Module):
    def __init__(self, in_channels: int, classes: int, layers: Layers):
        super().__init__()
        body, c_in = [], in_channels
        for c, k in zip((128, 256, 128), (8, 5, 3)):
            body += [layers.conv(c_in, c, k), layers.norm_layer(c), nn.ReLU()]
            c_in = c
        self.body = nn.Sequential(*body)
        self.head = keras_dense(c_in, classes)

    def forward(self, x):
        return self.head(self.body(x).mean(-1))


class ResidualBlock(nn.Module):
    """dl-4-tsc's resnet.py block: conv8-norm-relu, conv5-norm-relu, conv3-norm, plus the
    shortcut (a 1x1 conv and a norm where the channels change, else a norm alone), relu."""

    def __init__(self, c_in: int, c: int, layers: Layers):
        super().__init__()
        self.body = nn.Sequential(layers.conv(c_in, c, 8), layers.norm_layer(c), nn.ReLU(),
                                  layers.conv(c, c, 5), layers.norm_layer(c), nn.ReLU(),
                                  layers.conv(c, c, 3), layers.norm_layer(c))
        if c_in != c:
            self.shortcut = nn.Sequential(layers.conv(c_in, c, 1), layers.norm_layer(c))
        else:
            self.shortcut = layers.norm_layer(c) if layers.shortcut_norm else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """dl-4-tsc's classifiers/resnet.py: three residual blocks of 64, 128, 128 channels, global
    average pooling, a linear softmax layer."""

    def __init__(self, in_channels: int, classes: int, layers: Layers):
        super().__init__()
        self.body = nn.Sequential(ResidualBlock(in_channels, 64, layers), ResidualBlock(64, 128, layers),
                                  ResidualBlock(128, 128, layers))
        self.head = keras_dense(128, classes)

    def forward(self, x):
        return self.head(self.body(x).mean(-1))


MODELS = {"fcn": (FCN, 16), "resnet": (ResNet, 64)}   # the model and dl-4-tsc's batch cap


def accuracy(model: nn.Module, x, y, train_mode: bool = False) -> float:
    """Test accuracy in eval mode (BatchNorm's running statistics), or in train mode on the whole
    set at once (its batch statistics; running statistics restored after)."""
    state = copy.deepcopy(model.state_dict())
    model.train(train_mode)
    with torch.no_grad():
        acc = (model(x).argmax(-1) == y).float().mean().item()
    model.load_state_dict(state)
    model.train()
    return acc


def recalibrated(model: nn.Module, x) -> nn.Module:
    """A copy whose BatchNorm running statistics are the training set's, from one pass over it
    with the final weights (the population statistics a fully warmed-up running average tends to)."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        model(x)
    return model


def train_zoo(model, x, y, steps: int, batch: int, gen: torch.Generator):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    order, loss = torch.empty(0, dtype=torch.long), float("nan")
    for _ in range(steps):
        while len(order) < batch:
            order = torch.cat([order, torch.randperm(len(x), generator=gen)])
        idx, order = order[:batch], order[batch:]
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model, loss.item()


def train_dl4tsc(model, x, y, epochs: int, gen: torch.Generator, cap: int = 16):
    batch = int(min(len(x) / 10, cap))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=50, min_lr=1e-4,
                                                         threshold=1e-4, threshold_mode="abs")
    best, best_loss = None, math.inf
    for _ in range(epochs):
        perm, total = torch.randperm(len(x), generator=gen), 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        epoch_loss = total / len(x)
        plateau.step(epoch_loss)
        if epoch_loss < best_loss:
            best, best_loss = copy.deepcopy(model.state_dict()), epoch_loss
    model.load_state_dict(best)
    return model, best_loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ArrowHead")
    p.add_argument("--model", choices=sorted(MODELS), default="fcn")
    p.add_argument("--norm", choices=["batch", "channel", "none"], default="batch")
    p.add_argument("--groups", type=int, default=None, help="channel norm: groups per layer (default one per channel)")
    p.add_argument("--schedule", choices=["zoo", "dl4tsc"], default="zoo")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--init", choices=sorted(INIT), default="glorot", help="conv weights: Keras' or zoo's")
    p.add_argument("--shortcut", choices=["norm", "identity"], default="norm",
                   help="resnet: an unchanged-channel shortcut normalised (dl-4-tsc) or left alone (zoo)")
    args = p.parse_args()
    layers = Layers(args.norm, args.groups, args.init, args.shortcut == "norm")
    torch.set_num_threads(args.threads)
    x, y, xt, yt, classes = load(args.dataset)
    build, cap = MODELS[args.model]
    budget = (f"{args.steps} steps of batch {args.batch}, cosine" if args.schedule == "zoo" else
              f"{args.epochs} epochs of batch {int(min(len(x) / 10, cap))}, plateau, min-loss model")
    print(f"{args.dataset}: {len(x)} train / {len(xt)} test, T={x.shape[-1]}, {classes} classes; "
          f"{args.model} norm={args.norm}; {args.schedule}: {budget}")
    accs = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = build(x.shape[1], classes, layers)
        start = time.perf_counter()
        if args.schedule == "zoo":
            model, loss = train_zoo(model, x, y, args.steps, args.batch, gen)
        else:
            model, loss = train_dl4tsc(model, x, y, args.epochs, gen, cap)
        wall = time.perf_counter() - start
        acc = accuracy(model, xt, yt)
        accs.append(acc)
        extra = (f"  [training-set statistics {100 * accuracy(recalibrated(model, x), xt, yt):.1f}%, "
                 f"test-batch statistics {100 * accuracy(model, xt, yt, True):.1f}%]") if args.norm == "batch" else ""
        print(f"seed {seed}: test {100 * acc:.1f}%  train loss {loss:.4f}  {wall:.0f} s{extra}", flush=True)
    print(f"mean {100 * np.mean(accs):.1f}% +- {100 * np.std(accs):.1f} over {len(accs)} seeds")


if __name__ == "__main__":
    main()
