"""Does cross-attention align? (notebook 12)

* :func:`score_matrices` -- per explanation method (and per cross-attention layer/head), one
  ``[target, source]`` score matrix per analysis example, teacher-forced on the reference;
* :func:`alignment_table` -- alignment error rate (AER) of every cross-attention
  layer and head, of the head mean, and of every explanation method, against
  the gold alignments, with bootstrap CIs over sentences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aine_lib.attribution import as_adapter, get_method
from aine_lib.data.bible_task import pool_to_words
from aine_lib.experiments.seq2seq import EXPLANATIONS, Seq2SeqStudy, TrainedSeq2Seq, _batches
from aine_lib.metrics.alignment import alignment_from_scores, corpus_aer


def _aer_with_ci(pred: list[set], gold: list[set], seed: int, n_boot: int = 1000,
                 possible: list[set] | None = None) -> tuple[float, float, float]:
    value = corpus_aer(pred, gold, possible)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(gold), len(gold))
        stats.append(corpus_aer([pred[i] for i in idx], [gold[i] for i in idx],
                                None if possible is None else [possible[i] for i in idx]))
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return value, float(lo), float(hi)


def score_matrices(study: Seq2SeqStudy, m: TrainedSeq2Seq) -> dict[str, list[np.ndarray]]:
    """Per explanation (and per cross-attention layer/head): one ``[T, S]`` matrix per analysis example
    (teacher-forced on the reference target; rows = target tokens, EOS step dropped). Cached."""
    data = study.data(m.task)
    examples = study.analysis(m.task)
    pairs = [(data.vocab.encode(e.source), data.vocab.encode(e.target)) for e in examples]
    key = study.model_key(m)

    def compute() -> dict[str, list[np.ndarray]]:
        out: dict[str, list[np.ndarray]] = {}
        cfg = m.model.cfg
        adapter = as_adapter(m.model).eval()
        for start, b in _batches(pairs, 32):
            b = b.to(study.device)
            results = {name: get_method(name, adapter, **({"n_steps": study.cfg.seq2seq.ig_steps}
                                                          if name == "integrated_gradients" else {})).attribute(b, None)
                       for name in EXPLANATIONS}
            for layer in range(cfg.decoder_layers):
                for head in range(cfg.heads):
                    results[f"cross L{layer + 1} H{head}"] = get_method("cross_attention", adapter, layer=layer,
                                                                       head=head).attribute(b, None)
                results[f"cross L{layer + 1} mean"] = get_method("cross_attention", adapter,
                                                                 layer=layer).attribute(b, None)
            for i in range(len(b)):
                src_len, tgt_len = len(pairs[start + i][0]), len(pairs[start + i][1])
                for name, r in results.items():
                    out.setdefault(name, []).append(r[i, :tgt_len, :src_len].detach().cpu().numpy())
        return out

    return study.cache.get_or_compute("seq2seq_scores", key, compute)


def alignment_table(study: Seq2SeqStudy, seed: int = 0, variants: tuple[str, ...] = ("softmax",)) -> pd.DataFrame:
    """``tables/alignment.csv``: corpus AER (bootstrap CI over sentences) of each method vs the gold alignment.

    Only target tokens that have a gold link are scored (the question is
    "which source token produced this output token" for tokens that have
    one), and each gets exactly one predicted link, so on the synthetic tasks
    (one gold link per token, ``P = S``) AER equals 1 - top-1 accuracy of the
    link. On the Bible task the scoring is at word level, as is usual for
    subword models (e.g. Garg et al. 2019): each score matrix is pooled to
    words (source pieces summed, target pieces averaged) and compared with
    the eflomal references (sure = intersection, possible = union of the two
    directions). Signed methods are read by their value (the source token
    that most raised ``log p(y_t)``); a random matrix gives the floor.
    """
    rows = []
    for m in study.models(variants):
        examples = study.analysis(m.task)
        words = study.data(m.task).subwords
        if words:
            gold = [set(e.word_sure) for e in examples]
            possible = [set(e.word_possible) for e in examples]
        else:
            gold, possible = [set(e.alignment) for e in examples], None
        aligned_rows = [sorted({t for t, _ in g}) for g in gold]
        matrices = score_matrices(study, m)
        rng = np.random.default_rng(seed)
        matrices = dict(matrices) | {"random": [rng.random(x.shape) for x in next(iter(matrices.values()))]}
        for name, mats in matrices.items():
            if words:
                mats = [pool_to_words(x, e.source_word_ids, e.target_word_ids) for x, e in zip(mats, examples)]
            pred = [alignment_from_scores(x, r) for x, r in zip(mats, aligned_rows)]
            value, lo, hi = _aer_with_ci(pred, gold, seed, possible=possible)
            kind = "cross-attention head" if name.startswith("cross L") else "method"
            rows.append({"task": m.task, "variant": m.variant, "seed": m.seed, "method": name, "kind": kind,
                         "aer": value, "ci_low": lo,
                         "ci_high": hi, "n_sentences": len(gold)})
    return pd.DataFrame(rows)
