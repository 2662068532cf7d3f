"""The model registry: every architecture by name, each a `Model(init, apply, apply_with_stats)`
of pure functions (zoo.models.core).

    model = zoo.models.build("cnn", channels=(25, 25, 25), num_outputs=10)
    params = model.init(key, x)                       # x: example batch, only shapes matter
    y = model.apply(params, x, key=None, train=False)

Each family module holds frozen config dataclasses and `MODELS = {name: ModelEntry(...)}`.
NAMES below is the one list of names that tests and the command line iterate over, with the
module each name lives in and its line for `zoo list models`. A family module (and with it
jax) is imported when one of its names is first looked up in REGISTRY, so listing the names
and their descriptions costs no jax import.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from zoo.models.core import Model, ModelEntry

# name -> (family module of zoo.models, one line for `zoo list models`)
NAMES: dict[str, tuple[str, str]] = {
    "mlp": ("mlp", "multi-layer perceptron: depth, width, activation, dropout, residual, LayerNorm"),
    "cnn": ("cnn", "1-D/2-D convolutional network: pooling, residual blocks, GroupNorm/LayerNorm"),
    "tcn": ("tcn", "temporal convolutional network (Bai et al. 2018): dilated causal convolutions, residual blocks"),
    "rnn": ("recurrent", "Elman RNN sequence classifier: stacked, bidirectional, length masks"),
    "lstm": ("recurrent", "LSTM sequence classifier: stacked, bidirectional, length masks"),
    "gru": ("recurrent", "GRU sequence classifier: stacked, bidirectional, length masks"),
    "gru_gaps": ("recurrent", "GRU over an irregular series fed the time gaps (Rubanova et al. 2019's RNN baseline)"),
    "rnn_lm": ("recurrent_lm", "Elman RNN character language model"),
    "lstm_lm": ("recurrent_lm", "LSTM character language model (char-rnn)"),
    "gru_lm": ("recurrent_lm", "GRU character language model"),
    "transformer": ("transformer", "Transformer encoder classifier: pre-norm, CLS or mean pooling, learned/rotary "
                                   "positions"),
    "gpt": ("transformer", "decoder-only causal language model (GPT-2 shapes): KV-cache generation, grouped-query "
                           "attention"),
    "seq2seq": ("seq2seq", "encoder-decoder Transformer (Vaswani et al. 2017): cross-attention, greedy and beam "
                           "search with a KV cache"),
    "gru_seq2seq": ("recurrent_seq2seq", "attentional encoder-decoder GRU (Bahdanau et al. 2015): bidirectional "
                                         "encoder, additive attention, beam search"),
    "lstm_seq2seq": ("recurrent_seq2seq", "attentional encoder-decoder LSTM (Bahdanau et al. 2015's attention)"),
    "gcn": ("gnn", "graph convolutional network (Kipf & Welling 2017), node or graph level"),
    "gat": ("gnn", "graph attention network (Velickovic et al. 2018), multi-head"),
    "gin": ("gnn", "graph isomorphism network (Xu et al. 2019), sum aggregation"),
    "mpnn": ("gnn", "general message passing: edge, node and global updates (Battaglia et al. 2018)"),
    "odenet": ("node", "ODE-Net classifier: conv encoder, a conv vector field solved by diffrax, linear head"),
    "node": ("node", "neural ODE trajectory model: an MLP vector field integrated from y0 over given times"),
    "ode_rnn": ("latent_ode", "ODE-RNN (Rubanova et al. 2019): an ODE between observations, a GRU update at each"),
    "latent_ode": ("latent_ode", "latent ODE: ODE-RNN encoder backwards in time, an ODE decoder from z0, ELBO"),
    "rnn_vae": ("latent_ode", "RNN-VAE (Rubanova et al. 2019's baseline): GRU encoder and decoder fed the gaps, ELBO"),
    "cnf": ("cnf", "continuous normalising flow: log p(x) by an ODE with the exact trace"),
    "egnn": ("egnn", "E(n)-equivariant graph network (Satorras et al. 2021): updates positions, node level"),
    "vit": ("vit", "Vision Transformer: patch embedding, CLS or mean pooling, the encoder's blocks, zero head"),
    "mixer": ("mlp", "MLP-Mixer (Tolstikhin et al. 2021): patch embedding, token- and channel-mixing MLPs, zero head"),
    "deepsets": ("deepsets", "Deep Sets (Zaheer et al. 2017): rho(sum of phi over a set's elements), masks for padding"),
    "hnn": ("hnn", "Hamiltonian neural network (Greydanus et al. 2019): z' = J grad H_theta; baseline: z' = MLP(z)"),
}


def description(name: str) -> str:
    """The one line `zoo list models` shows for model `name` (no family module is imported)."""
    return NAMES[name][1]


# name -> ModelEntry of families registered from outside zoo (register)
REGISTERED: dict[str, ModelEntry] = {}


def register(name: str, model: ModelEntry, description: str) -> None:
    """Add model `name` from your own code (a family module outside zoo): it trains, evaluates,
    exports and is probed like a built-in one in this process (README, "Add a family")."""
    if name in NAMES:
        raise ValueError(f"model {name!r} is already registered ({NAMES[name][1]})")
    NAMES[name] = ("", description)
    REGISTERED[name] = model


class Registry(Mapping[str, ModelEntry]):
    """name -> ModelEntry, the family module imported on the first lookup of one of its names."""

    def __getitem__(self, name: str) -> ModelEntry:
        if name in REGISTERED:
            return REGISTERED[name]
        module, _ = NAMES[name]
        return importlib.import_module(f"zoo.models.{module}").MODELS[name]

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


REGISTRY = Registry()


def entry(name: str) -> ModelEntry:
    """The registry entry of model `name`; unknown names list the valid ones."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; valid: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def build(name: str, config: Any = None, **hyper: Any) -> Model:
    """Build model `name` from hyperparameters, or from its config dataclass (plus changes)."""
    e = entry(name)
    cfg = e.config(**hyper) if config is None else dataclasses.replace(config, **hyper)
    return e.build(name, cfg)


__all__ = ["NAMES", "REGISTRY", "Model", "ModelEntry", "build", "description", "entry", "register"]
