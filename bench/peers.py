"""The peers' recipes as whole processes, each as its authors run it: what `bench.bench_fit`
times against `zoo train` of the same recipe. Each imports only PyTorch (and torchdiffeq) and
NumPy, never jax or zoo, so the process pays what the peer's users pay.

    python -m bench.peers mnist1d_mlp|mnist1d_cnn|spiral|nanogpt   # prints one JSON line

- mnist1d_*: the MNIST-1D paper's PyTorch recipe (Greydanus 2020): 6000 Adam(1e-2) steps of
  batch 100 on the paper's split, test accuracy every 250 steps, as its notebook does.
- spiral: torchdiffeq's examples/ode_demo.py (dopri5, RMSprop 1e-3, L1 loss, 2000 iterations,
  the whole trajectory evaluated every 20), its data made by odeint as the demo makes it.
- nanogpt: nanoGPT's shakespeare_char CPU recipe (4 layers, 4 heads, 128 wide, context 64,
  batch 12, 2000 iterations, AdamW 1e-3 warmup 100 then cosine to 1e-4, clip 1, loss.item()
  every iteration, estimate_loss over 20 batches of both splits every 250), then the loss on
  the whole validation split (the number zoo's eval_loss reports).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TEXT = ROOT / "zoo" / "data" / "files" / "tinyshakespeare.txt"


def mnist1d_model(name: str):
    """The paper's PyTorch MLP or CNN."""
    from torch import nn
    if name == "mlp":
        return nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    return nn.Sequential(nn.Unflatten(1, (1, 40)), nn.Conv1d(1, 25, 5, 2, 1), nn.ReLU(),
                         nn.Conv1d(25, 25, 3, 2, 1), nn.ReLU(), nn.Conv1d(25, 25, 3, 2, 1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(125, 10))


def mnist1d(name: str) -> dict:
    import torch
    # zoo's cache of the paper's split (written by `zoo train mnist1d_*`, which runs first)
    cache = Path(os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "zoo"))
    a = np.load(cache / "mnist1d_default.npz", allow_pickle=False)
    x, y = torch.from_numpy(a["x"]), torch.from_numpy(a["y"]).long()
    x_test, y_test = torch.from_numpy(a["x_test"]), torch.from_numpy(a["y_test"]).long()
    torch.manual_seed(0)
    model = mnist1d_model(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()
    accuracy = 0.0
    for step in range(6000):
        idx = torch.randint(0, len(x), (100,))
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
        if (step + 1) % 250 == 0:
            with torch.no_grad():
                accuracy = float((model(x_test).argmax(-1) == y_test).float().mean())
    return {"eval_accuracy": accuracy}


def spiral() -> dict:
    import torch
    import torchdiffeq
    from torch import nn
    torch.manual_seed(0)
    true_y0, t = torch.tensor([[2.0, 0.0]]), torch.linspace(0.0, 25.0, 1000)
    true_a = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    with torch.no_grad():
        true_y = torchdiffeq.odeint(lambda t, y: torch.mm(y ** 3, true_a), true_y0, t, method="dopri5")

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(2, 50), nn.Tanh(), nn.Linear(50, 2))
            for m in self.net.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, mean=0, std=0.1)
                    nn.init.constant_(m.bias, val=0)

        def forward(self, t, y):
            return self.net(y ** 3)

    func = Field()
    opt = torch.optim.RMSprop(func.parameters(), lr=1e-3)
    mse = math.nan
    for itr in range(1, 2001):
        s = torch.from_numpy(np.random.choice(np.arange(1000 - 10, dtype=np.int64), 20, replace=False))
        batch_y0, batch_t = true_y[s], t[:10]
        batch_y = torch.stack([true_y[s + i] for i in range(10)], dim=0)
        opt.zero_grad()
        pred = torchdiffeq.odeint(func, batch_y0, batch_t)
        torch.mean(torch.abs(pred - batch_y)).backward()
        opt.step()
        if itr % 20 == 0:
            with torch.no_grad():
                pred_y = torchdiffeq.odeint(func, true_y0, t)
                mse = float(torch.mean((pred_y - true_y) ** 2))
    return {"eval_mse": mse}


def nanogpt_model(v: int, t: int, d: int, layers: int, heads: int, gelu: str = "none"):
    """nanoGPT's GPT in PyTorch: LayerNorm, learned positions, GELU MLP 4x (gelu="tanh": the
    approximation), biases, the output tied to the token embedding."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.c_attn, self.attn_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x):
            n, steps = x.shape[:2]
            q, k, v_ = self.c_attn(self.ln_1(x)).split(d, dim=2)
            part = lambda z: z.view(n, steps, heads, d // heads).transpose(1, 2)  # noqa: E731
            y = F.scaled_dot_product_attention(part(q), part(k), part(v_), is_causal=True)
            x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(n, steps, d))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate=gelu))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(v, d), nn.Embedding(t, d)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f = nn.LayerNorm(d)

        def forward(self, idx):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.ln_f(x) @ self.wte.weight.T

    return GPT()


def nanogpt() -> dict:
    import torch
    from torch.nn import functional as F
    text = TEXT.read_text(encoding="utf-8")
    chars = sorted(set(text))
    lookup = np.zeros(max(map(ord, chars)) + 1, np.int64)
    lookup[[ord(c) for c in chars]] = np.arange(len(chars))
    data = lookup[np.frombuffer(text.encode("utf-32-le"), np.uint32)]
    split = int(0.9 * len(data))
    train, val = torch.from_numpy(data[:split]), torch.from_numpy(data[split:])
    b, t, d, layers, heads, v = 12, 64, 128, 4, 4, len(chars)

    def batch(source):
        ix = torch.randint(len(source) - t, (b,))
        return torch.stack([source[i:i + t] for i in ix]), torch.stack([source[i + 1:i + 1 + t] for i in ix])

    def loss_of(x, y):
        return F.cross_entropy(model(x).view(-1, v), y.reshape(-1))

    def lr_at(it):  # nanoGPT's get_lr
        if it < 100:
            return 1e-3 * (it + 1) / 101
        ratio = (it - 100) / (2000 - 100)
        return 1e-4 + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (1e-3 - 1e-4)

    torch.manual_seed(1337)
    model = nanogpt_model(v, t, d, layers, heads)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    for it in range(2001):
        for group in opt.param_groups:
            group["lr"] = lr_at(it)
        if it % 250 == 0:
            with torch.no_grad():  # estimate_loss (no dropout in this recipe: no eval/train mode switch)
                for source in (train, val):
                    torch.stack([loss_of(*batch(source)) for _ in range(20)]).mean()
        loss = loss_of(*batch(train))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()  # log_interval=1
    with torch.no_grad():  # the whole validation split in windows of t, as zoo's eval_loss
        windows = (len(val) - 1) // t
        x = val[:windows * t].view(windows, t)
        y = val[1:windows * t + 1].view(windows, t)
        whole = float(torch.stack([loss_of(x[i:i + 584], y[i:i + 584]) * len(x[i:i + 584])
                                   for i in range(0, windows, 584)]).sum() / windows)
    return {"eval_loss": whole}


def main() -> None:
    start = time.perf_counter()
    name = sys.argv[1]
    if name.startswith("mnist1d_"):
        result = mnist1d(name.removeprefix("mnist1d_"))
    else:
        result = {"spiral": spiral, "nanogpt": nanogpt}[name]()
    print(json.dumps({**result, "in_process_s": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
