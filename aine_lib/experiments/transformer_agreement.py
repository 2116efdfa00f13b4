"""Agreement between the Transformer explanations, their plausibility, and examples to show (notebooks 08, 10).

* :func:`layer_head_agreement` -- top-k Kendall tau between each layer/head's [CLS] attention and a reference;
* :func:`method_agreement` -- mean Kendall tau between every pair of methods;
* :func:`plausibility` -- AUPRC of each method against the planted rationale;
* :func:`chosen_examples` -- analysis examples for side-by-side heat maps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from aine_lib.experiments.transformers import (TrainedTransformer, TransformerStudy, _batches, _content_positions,
                                               token_strings)
from aine_lib.metrics.bootstrap import bootstrap_ci
from aine_lib.metrics.faithfulness import plausibility_auprc
from aine_lib.metrics.rank import kendall_tau, kendall_tau_top_k


def layer_head_agreement(study: TransformerStudy, m: TrainedTransformer, reference: dict,
                         reference_name: str, floor: dict | None = None, seed: int = 0) -> pd.DataFrame:
    """Top-k Kendall tau between each layer/head's [CLS] attention (and each layer's head mean) and a reference.

    Tau over the union of two top-k sets is *negative* for unrelated scorings
    (a token in one top-k but not the other is discordant by construction), so
    ``floor`` (the ``random`` method's scores) adds a row with ``layer = 0``,
    ``head = "random"``: the value a head must beat.
    """
    split = study.encoded(m.dataset, m.kind)["analysis"]
    positions = _content_positions(study, m)
    k = study.cfg.transformer.top_k
    cfg = m.model.cfg
    taus: dict[tuple[int, int], list[float]] = {}
    for start, batch in _batches(split, 32):
        batch = batch.to(study.device)
        with torch.no_grad():
            att = torch.stack(m.model(batch.ids, batch.mask).attentions)[:, :, :, 0, :].cpu().numpy()  # [L,B,h,T]
        for i in range(att.shape[1]):
            pos = positions[start + i]
            if len(pos) < 2:
                continue
            ref = np.abs(reference.scores[start + i][pos])
            if floor is not None:
                taus.setdefault((-1, -2), []).append(kendall_tau_top_k(floor.scores[start + i][pos], ref, k))
            for layer in range(cfg.layers):
                for head in range(-1, cfg.heads):
                    a = att[layer, i].mean(0) if head < 0 else att[layer, i, head]
                    taus.setdefault((layer, head), []).append(kendall_tau_top_k(a[pos], ref, k))
    rows = []
    for (layer, head), values in taus.items():
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        lo, hi = bootstrap_ci(v, seed=seed) if len(v) else (np.nan, np.nan)
        head_name = "random" if head == -2 else "mean" if head == -1 else str(head)
        rows.append({"dataset": m.dataset, "model": m.kind, "seed": m.seed, "layer": layer + 1,
                     "head": head_name, "reference": reference_name,
                     "tau_top_k": float(v.mean()) if len(v) else np.nan, "ci_low": lo, "ci_high": hi, "n": len(v)})
    return pd.DataFrame(rows)


def method_agreement(study: TransformerStudy, m: TrainedTransformer, scores: dict[str, dict]) -> pd.DataFrame:
    """Mean Kendall tau (content tokens, absolute scores) between every pair of methods."""
    positions = _content_positions(study, m)
    names = list(scores)
    rows = []
    for a in names:
        for b in names:
            vals = []
            for i, pos in enumerate(positions):
                if len(pos) < 2:
                    continue
                vals.append(kendall_tau(np.abs(scores[a].scores[i][pos]), np.abs(scores[b].scores[i][pos]))[0])
            v = np.asarray(vals, dtype=float)
            rows.append({"dataset": m.dataset, "model": m.kind, "method_a": a, "method_b": b,
                         "tau": float(np.nanmean(v)) if len(v) else np.nan, "n": int(np.isfinite(v).sum())})
    return pd.DataFrame(rows)


def plausibility(study: TransformerStudy, m: TrainedTransformer, scores: dict[str, dict], seed: int = 0
                 ) -> pd.DataFrame:
    """AUPRC of each method's scores against the planted rationale (content tokens only), with a bootstrap CI."""
    rationales = study.rationales(m.dataset, m.kind)
    if rationales is None:
        return pd.DataFrame()
    positions = _content_positions(study, m)
    rows = []
    for method, r in scores.items():
        s = [np.abs(r.scores[i][pos]) for i, pos in enumerate(positions)]
        g = [rationales[i][pos] for i, pos in enumerate(positions)]
        ap = plausibility_auprc(s, g)
        ap = ap[np.isfinite(ap)]
        lo, hi = bootstrap_ci(ap, seed=seed) if len(ap) else (np.nan, np.nan)
        rows.append({"dataset": m.dataset, "model": m.kind, "seed": m.seed, "method": method,
                     "auprc": float(ap.mean()) if len(ap) else np.nan, "ci_low": lo, "ci_high": hi, "n": len(ap)})
    return pd.DataFrame(rows)


def chosen_examples(study: TransformerStudy, m: TrainedTransformer, scores: dict[str, dict], n: int = 3,
                    min_tokens: int = 6, max_tokens: int = 24) -> list[dict]:
    """``n`` analysis examples for side-by-side heat maps: the first correctly classified ones of moderate
    length, one per predicted class in turn (deterministic: by analysis order). Special tokens are dropped."""
    split = study.encoded(m.dataset, m.kind)["analysis"]
    labels = study.data(m.dataset).label_names
    rationales = study.rationales(m.dataset, m.kind)
    target = next(iter(scores.values())).target
    picked: list[int] = []
    wanted_class = 0
    for _ in range(len(labels) * len(split)):
        for i, ids in enumerate(split.ids):
            if i in picked or not min_tokens <= len(ids) <= max_tokens:
                continue
            if target[i] == split.labels[i] == wanted_class:
                picked.append(i)
                break
        wanted_class = (wanted_class + 1) % len(labels)
        if len(picked) >= n:
            break
    out = []
    for i in picked:
        # [CLS]/[SEP] are left out: they are not input words, and self-relevance (rollout, Chefer) or their
        # removal (leave-one-out) would dominate each row's colour scale.
        keep = np.asarray([j for j, w in enumerate(split.word_index[i]) if w >= 0])
        out.append({"tokens": [token_strings(study, m, split.ids[i])[j] for j in keep],
                    "scores": {k: np.asarray(v.scores[i])[keep] for k, v in scores.items()},
                    "rationale": None if rationales is None else rationales[i][keep],
                    "title": f"{m.dataset} · {m.kind} · example {i}: gold {labels[split.labels[i]]}, "
                             f"predicted {labels[target[i]]}"})
    return out
