"""Word-alignment error rate (Och & Ney 2003) and alignments read off score matrices.

An alignment is a set of links ``(target position, source position)``. With
sure links ``S`` and possible links ``P`` (``S ⊆ P``; for synthetic tasks and
for one-to-one reference alignments ``P = S``):

    AER(A; S, P) = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|)

0 is perfect. :func:`alignment_from_scores` turns a ``[T_tgt, T_src]`` score
matrix (a cross-attention map, an attribution matrix) into links: each target
position links to its highest-scoring source position (the usual reading of
attention as alignment, e.g. Garg et al. 2019).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

Links = set[tuple[int, int]]


def aer(predicted: Iterable[tuple[int, int]], sure: Iterable[tuple[int, int]],
        possible: Iterable[tuple[int, int]] | None = None) -> float:
    """Alignment error rate of one sentence pair (or of pooled links of a corpus)."""
    a, s = set(predicted), set(sure)
    p = set(possible) | s if possible is not None else set(s)
    if not a and not s:
        return 0.0
    return 1.0 - (len(a & s) + len(a & p)) / (len(a) + len(s))


def corpus_aer(predicted: list[Links], sure: list[Links], possible: list[Links] | None = None) -> float:
    """AER over a corpus: link counts summed over sentence pairs before the ratio (the standard definition)."""
    if len(predicted) != len(sure) or (possible is not None and len(possible) != len(sure)):
        raise ValueError("predicted, sure (and possible) must have one entry per sentence pair")
    hits_s = hits_p = n_a = n_s = 0
    for i, (a, s) in enumerate(zip(predicted, sure)):
        a, s = set(a), set(s)
        p = (set(possible[i]) | s) if possible is not None else s
        hits_s += len(a & s)
        hits_p += len(a & p)
        n_a += len(a)
        n_s += len(s)
    if n_a + n_s == 0:
        return 0.0
    return 1.0 - (hits_s + hits_p) / (n_a + n_s)


def alignment_from_scores(scores: np.ndarray, target_positions: Iterable[int] | None = None) -> Links:
    """Links ``(t, argmax_s scores[t, s])`` for each target row ``t`` (all rows, or ``target_positions``)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [T_tgt, T_src], got shape {scores.shape}")
    rows = range(scores.shape[0]) if target_positions is None else target_positions
    return {(int(t), int(np.argmax(scores[t]))) for t in rows}
