"""bench/bench_decode.py: it counts the steps the greedy loop ran, and runs end to end on a tiny
setting with the cached and recomputing Transformer decodes agreeing."""
import numpy as np

from bench import bench_decode

TINY = ["--batch", "4", "--repeats", "1", "--set", "data.max_number=99"]
MODELS = {"numbers_en_de_transformer": ["model.num_layers=1", "model.d_model=16", "model.num_heads=2"],
          "numbers_en_de_gru": ["model.embed_dim=8", "model.hidden_size=16", "model.attention_size=8"]}


def test_decode_steps_is_the_longest_row_up_to_its_eos():
    ids = np.array([[5, 2, 0, 0, 0],       # ends at step 2
                    [5, 6, 7, 2, 0],       # ends at step 4
                    [5, 6, 0, 0, 0]])      # no EOS: the loop ran to the end
    assert bench_decode.decode_steps(ids[:2]) == 4
    assert bench_decode.decode_steps(ids) == 5            # a row without EOS ran the whole length


def test_bench_runs_and_cache_equals_recomputation(capsys):
    for name, overrides in MODELS.items():
        assert bench_decode.main(["--configs", name, *TINY, *overrides]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("numbers_en_de")]
    assert [r[1:3] for r in rows] == [["seq2seq", "cache=True"], ["seq2seq", "cache=False"], ["gru_seq2seq", "4"]]
    assert rows[0][4] == rows[1][4]                       # the same steps decoded with or without the cache
    assert "faster than recomputation" in out
