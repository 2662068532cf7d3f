"""Use a trained translation run: translate text, and score translations as the field does.

    run = zoo.load_run("runs/numbers_en_de_transformer")
    translate(run, ["four hundred and twenty-three"])      # ["vierhundertdreiundzwanzig"]
    evaluate(run)        # exact match, BLEU and chrF (sacrebleu) of greedy and beam search

Texts are encoded with the vocabulary the run stored (preprocessing.json; zoo.data.translation:
characters it never saw become UNK), decoded by the model's registry entry (`ModelEntry.translate`:
greedy or beam search, zoo.models.decoding) in batches of train.eval_batch_size rows, the last one
padded, so any number of lines compiles once per decoding choice.

BLEU (Papineni et al. 2002) and chrF (Popovic 2015) come from sacrebleu (Post 2018), the
field's reference implementation, on the detokenised text: corpus BLEU over characters
(tokenize="char": a German number is one compound word, so word 4-grams would score every
one-word sentence 0), chrF with character 6-grams, beta 2. Both are 0..100.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from zoo.errors import ConfigError
from zoo.experiment import Run


def check(run: Run) -> None:
    if run.exp.dataset.task != "translation":
        raise ConfigError(f"{run.run_dir} is not a translation run (its data is {run.cfg.data_name!r})")


def vocabulary(run: Run) -> tuple[Sequence[str], int]:
    """(vocabulary, source length) the run was trained with: those it stored (preprocessing.json),
    not those of its data file read again, which may have changed since (parallel_text)."""
    from zoo.data import preprocess
    pre = preprocess.load(run.run_dir) or run.exp.dataset.preprocessing
    return pre["vocab"], pre["source_length"]


def check_data(run: Run) -> None:
    """The data read again is the data the run was trained on: a changed pairs file would be split
    and encoded afresh, so its held-out pairs would be scored with shifted character ids."""
    from zoo.data import preprocess
    stored = preprocess.load(run.run_dir)
    if stored and stored != run.exp.dataset.preprocessing:
        where = getattr(run.cfg.data, "path", None) or run.cfg.data_name
        raise ConfigError(f"{where} no longer gives the pairs {run.run_dir} was trained on (its preprocessing.json "
                          f"differs); restore the file, or train again")


def translate_ids(run: Run, source: np.ndarray, *, beam_size: int | None = None) -> np.ndarray:
    """source ids [N, S] -> output ids [N, L], in padded batches of train.eval_batch_size."""
    from zoo.models import entry
    rows = run.cfg.train.eval_batch_size
    out = []
    for start in range(0, len(source), rows):
        chunk = source[start:start + rows]
        padded = np.concatenate([chunk, np.zeros((rows - len(chunk), source.shape[1]), source.dtype)])
        ids = entry(run.cfg.model_name).translate(run.cfg.model_name, run.cfg.model, run.params, padded,
                                                  beam_size=beam_size)
        out.append(np.asarray(ids)[:len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, 0), np.int32)


def translate(run: Run, sources: Sequence[str], *, beam_size: int | None = None) -> list[str]:
    """Each source text translated (beam_size None: the config's; 1: greedy)."""
    import zoo.data.translation as data
    check(run)
    vocab, length = vocabulary(run)
    too_long = [i + 1 for i, s in enumerate(sources) if len(s) + 1 > length]
    if too_long:
        raise ConfigError(f"line {too_long[0]} is longer than the {length - 1} characters the model was trained "
                          f"on ({len(too_long)} lines are); shorten or split it")
    ids = translate_ids(run, data.encode(sources, vocab, length, eos=True), beam_size=beam_size)
    return [data.decode(row, vocab) for row in ids]


def scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """exact_match (fraction), bleu (over characters) and chrf (0..100, sacrebleu) of hypotheses
    against references."""
    try:
        import sacrebleu
    except ImportError:
        raise ConfigError("BLEU and chrF need sacrebleu: pip install 'zoo[translation]'") from None
    exact = float(np.mean([h == r for h, r in zip(hypotheses, references)])) if references else 0.0
    return {"exact_match": exact, "bleu": sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize="char").score,
            "chrf": sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score}


def evaluate(run: Run, split: str = "test") -> dict[str, float]:
    """Greedy and beam-search translations of a split, scored: {greedy_exact_match, greedy_bleu,
    greedy_chrf, beam_exact_match, beam_bleu, beam_chrf, beam_size, *_tokens_per_s}."""
    check(run)
    check_data(run)
    arrays = {"test": run.exp.dataset.test, "val": run.exp.dataset.val, "train": run.exp.dataset.train}[split]
    if not arrays:
        raise ConfigError(f"{run.run_dir} has no {split} split")
    sources, references = run.exp.dataset.texts(split)
    beam = run.cfg.model.beam_size
    out: dict[str, float] = {"beam_size": beam}
    for name, size in (("greedy", 1), ("beam", beam)):
        translate(run, sources[:1], beam_size=size)               # compiled before the clock starts
        start = time.perf_counter()
        hypotheses = translate(run, sources, beam_size=size)
        seconds = time.perf_counter() - start
        out.update({f"{name}_{k}": v for k, v in scores(hypotheses, references).items()})
        out[f"{name}_tokens_per_s"] = (sum(map(len, hypotheses)) + len(hypotheses)) / seconds
    return out
