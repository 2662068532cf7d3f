"""Every registered model at a small size, with the dataset its inputs come from: the cases the
contract (test_contract.py) and the watch tests (test_watch.py) run over. A helper, not a test."""
import dataclasses
import tempfile

from zoo import config
from zoo import experiment as ex

# name -> small hyperparameters and the dataset (with options) its inputs come from
SEQ = ["data.name=mnist1d", "data.format=sequence"]
TEXT = ["data.name=text", "data.seq_len=16", "train.eval_batches=1"]
RNN = {"hidden_size": 8, "num_layers": 2, "bidirectional": True}
RNN_LM = {"embed_dim": 8, "hidden_size": 8, "num_layers": 2}
TINY_TRANSFORMER = {"num_layers": 1, "num_heads": 2, "d_model": 16}
IRREGULAR = ["data.name=irregular_periodic", "data.num_train=16", "data.num_test=8", "data.num_points=8"]
NBODY_CACHE = f"{tempfile.gettempdir()}/zoo-test-cache"   # small simulated splits, kept between runs
CASES = {
    "mlp": ({"width": 16, "residual": True, "norm": "layer"}, ["data.name=mnist1d"]),
    "cnn": ({"channels": (4, 8), "kernel_sizes": (3,), "strides": (2,), "norm": "group", "num_groups": 2,
             "residual": True}, ["data.name=mnist1d"]),
    "rnn": (RNN, SEQ), "lstm": (RNN, SEQ), "gru": (RNN, SEQ),
    "tcn": ({"channels": (4, 8), "kernel_size": 3}, SEQ),
    "rnn_lm": (RNN_LM, TEXT), "lstm_lm": (RNN_LM, TEXT), "gru_lm": (RNN_LM, TEXT),
    "transformer": (TINY_TRANSFORMER, ["data.name=mnist1d", "data.format=patches"]),
    "gpt": ({**TINY_TRANSFORMER, "context_length": 16}, TEXT),
    # a zero head (the default) gives the trunk no gradient at initialisation: tests/integration/test_vision.py
    "vit": ({**TINY_TRANSFORMER, "patch_size": 4, "zero_head": False}, ["data.name=digits"]),
    "mixer": ({"patch_size": 4, "num_blocks": 2, "hidden_size": 8, "tokens_mlp_dim": 4, "channels_mlp_dim": 16,
               "zero_head": False}, ["data.name=digits"]),
    "seq2seq": (TINY_TRANSFORMER, ["data.name=translation", "data.max_number=99"]),
    "gru_seq2seq": ({"embed_dim": 8, "hidden_size": 8, "attention_size": 8}, ["data.name=translation", "data.max_number=99"]),
    "lstm_seq2seq": ({"embed_dim": 8, "hidden_size": 8, "attention_size": 8}, ["data.name=translation", "data.max_number=99"]),
    "gcn": ({"hidden_sizes": (8,), "dropout_rate": 0.0}, ["data.name=karate"]),
    "gat": ({"hidden_sizes": (4,), "num_heads": 2, "dropout_rate": 0.0, "attention_dropout_rate": 0.0},
            ["data.name=karate"]),
    "gin": ({"hidden_sizes": (8, 8), "task_level": "graph"}, ["data.name=graph_cycles", "data.num_train=16",
                                                               "data.num_test=8"]),
    "mpnn": ({"hidden_sizes": (8, 8), "task_level": "graph"}, ["data.name=graph_cycles", "data.num_train=16",
                                                                "data.num_test=8"]),
    "egnn": ({"hidden_size": 8, "num_layers": 2}, ["data.name=nbody", "data.num_train=16", "data.num_val=2",
                                                   "data.num_test=8", f"data.cache_dir={NBODY_CACHE}"]),
    "deepsets": ({"width": 8, "phi_depth": 2, "rho_depth": 1},
                 ["data.name=digit_sets", "data.num_train=16", "data.num_test=8", "data.test_size=5"]),
    "hnn": ({"width": 16}, ["data.name=hamiltonian", "data.system=two_body"]),
    # fixed-step solvers keep compile times short; tests/unit/test_node.py covers the adaptive ones
    "node": ({"width": 8, "solver": "rk4", "dt0": 0.05}, ["data.name=spiral"]),
    "gru_gaps": ({"hidden_size": 8}, IRREGULAR),
    "ode_rnn": ({"hidden_size": 8, "width": 8}, IRREGULAR),
    "latent_ode": ({"hidden_size": 8, "width": 8, "latent_dim": 4}, IRREGULAR),
    "rnn_vae": ({"hidden_size": 8, "latent_dim": 4}, IRREGULAR),
    "odenet": ({"channels": 8, "num_groups": 2, "solver": "rk4", "dt0": 0.25}, ["data.name=mnist1d"]),
    "cnf": ({"width": 8, "depth": 1, "solver": "rk4", "dt0": 0.25}, ["data.name=toy2d", "data.num_test=16"]),
}
BATCH = 8


def experiment(name):
    hyper, data = CASES[name]
    cfg = config.load(None, [f"model.name={name}", *data, f"train.batch_size={BATCH}",
                             f"train.eval_batch_size={BATCH}", "mesh.data=1"])
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, **hyper))
    return ex.build(cfg)
