"""Inside the model, neuron by neuron: activation maximisation for text and a TF-IDF glass box (notebook 16).

* :func:`dataset_ngrams` / :func:`optimised_inputs` -- activation
  maximisation for text: the corpus n-grams that most activate chosen
  neurons, and an input optimised in embedding space, projected to its
  nearest tokens (and the activation that projection actually reaches).
* :func:`tfidf_explanations` -- the statistical glass box the seed names:
  TF-IDF-weighted logistic regression coefficients as an explanation of the
  same inputs, to be scored for faithfulness to the Transformer like any other
  method.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from aine_lib.attribution import Explanation
from aine_lib.experiments.internals import _split, cls_states
from aine_lib.experiments.transformers import TrainedTransformer, TransformerStudy, _batches, token_strings
from aine_lib.models.training import collate
from aine_lib.models.transformer_training import predict_probabilities


# ----- activation maximisation ---------------------------------------------------------------------------

def choose_neurons(study: TransformerStudy, m: TrainedTransformer, n: int = 4) -> list[tuple[int, int]]:
    """``(layer, unit)`` pairs: the ``n`` units of the last layer's [CLS] state whose activation separates the
    model's predicted classes best (largest |standardised mean difference| on the dev rows)."""
    dev = _split(study, m, "dev", 500, seed=study.cfg.seed)
    states = cls_states(study, m, dev)[:, -1]
    pred = predict_probabilities(m.model, dev, study.device).argmax(1)
    if len(set(pred.tolist())) < 2:
        effect = np.abs(states.mean(0)) / (states.std(0) + 1e-9)
    else:
        a, b = states[pred == pred.min()], states[pred != pred.min()]
        effect = np.abs(a.mean(0) - b.mean(0)) / (states.std(0) + 1e-9)
    layer = m.model.cfg.layers
    return [(layer, int(u)) for u in np.argsort(-effect)[:n]]


@torch.no_grad()
def dataset_ngrams(study: TransformerStudy, m: TrainedTransformer, neurons: list[tuple[int, int]],
                   n: int = 3, top: int = 5, cap: int | None = 2000) -> pd.DataFrame:
    """For each neuron ``(layer, unit)`` of the [CLS] state (the quantity :func:`choose_neurons` picks and
    :func:`optimised_inputs` maximises): the ``top`` training inputs with the highest [CLS] activation, and
    in each the ``n``-gram whose occlusion ([MASK], or padding for a model without one) lowers that
    activation most -- the part of the real input the unit responds to."""
    split = _split(study, m, "train", cap, seed=study.cfg.seed)
    m.model.eval()
    cfg = m.model.cfg
    blank = cfg.mask_id if cfg.mask_id is not None else cfg.pad_id
    activations = {nu: [] for nu in neurons}
    for start, b in _batches(split, 32):
        hidden = m.model(b.ids.to(study.device), b.mask.to(study.device)).hidden_states
        for (layer, unit) in neurons:
            activations[(layer, unit)].append(hidden[layer][:, 0, unit].float().cpu().numpy())
    rows = []
    for (layer, unit), parts in activations.items():
        act = np.concatenate(parts)
        for rank, i in enumerate(np.argsort(-act)[:top], start=1):
            ids, words = split.ids[i], split.word_index[i]
            content = [t for t, w in enumerate(words) if w >= 0]
            starts = sorted({max(content[0], min(t, content[-1] - n + 1)) for t in content}) if content else []
            variants = []
            for s0 in starts:
                v = list(ids)
                for t in range(s0, min(s0 + n, content[-1] + 1)):
                    v[t] = blank
                variants.append(v)
            best_text, drop = "", np.nan
            if variants:
                vb = collate(variants, [0] * len(variants)).to(study.device)
                occluded = m.model(vb.ids, vb.mask).hidden_states[layer][:, 0, unit].float().cpu().numpy()
                k = int(np.argmax(act[i] - occluded))
                s0 = starts[k]
                best_text = " ".join(token_strings(study, m, ids[s0:min(s0 + n, content[-1] + 1)]))
                drop = float(act[i] - occluded[k])
            rows.append({"dataset": m.dataset, "model": m.kind, "layer": layer, "unit": unit, "rank": rank,
                         "activation": float(act[i]), "ngram": best_text, "activation_drop_when_occluded": drop,
                         "input": " ".join(token_strings(study, m, [t for t, w in zip(ids, words) if w >= 0][:40]))})
    return pd.DataFrame(rows)


def nearest_tokens(embeddings: torch.Tensor, table: torch.Tensor, exclude: tuple[int, ...] = ()) -> torch.Tensor:
    """Index of the row of ``table`` with the highest cosine similarity to each row of ``embeddings``."""
    sims = torch.nn.functional.normalize(embeddings, dim=-1) @ torch.nn.functional.normalize(table, dim=-1).T
    if exclude:
        sims[..., list(exclude)] = -float("inf")
    return sims.argmax(-1)


def optimised_inputs(study: TransformerStudy, m: TrainedTransformer, neurons: list[tuple[int, int]],
                     length: int = 6, steps: int = 200, lr: float = 0.05, l2: float = 0.01,
                     seed: int = 0) -> pd.DataFrame:
    """For each neuron ``(layer, unit)``: optimise ``length`` free input embeddings (between [CLS] and [SEP])
    to maximise the unit's [CLS] activation (minus ``l2`` x squared norm), then project each position to its
    nearest token. Reports the activation of the optimised embeddings, of the projected tokens, and the mean
    activation over real dev rows for scale: the gap is the usual caveat of activation maximisation for
    discrete inputs."""

    model = m.model.eval()
    previous = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        return _optimise(study, m, model, neurons, length, steps, lr, l2, seed)
    finally:
        for p, flag in zip(model.parameters(), previous):
            p.requires_grad_(flag)


def _optimise(study, m, model, neurons, length, steps, lr, l2, seed) -> pd.DataFrame:
    table = model.word_embeddings.weight.detach()
    cfg = model.cfg
    specials = tuple(i for i in (cfg.pad_id, cfg.cls_id, cfg.sep_id, cfg.mask_id) if i is not None)
    dev = _split(study, m, "dev", 500, seed=study.cfg.seed)
    dev_states = cls_states(study, m, dev)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for layer, unit in neurons:
        ids = torch.tensor([[cfg.cls_id if cfg.cls_id is not None else cfg.pad_id] + [cfg.pad_id] * length +
                            ([cfg.sep_id] if cfg.sep_id is not None else [])], device=study.device)
        mask = torch.ones_like(ids, dtype=torch.bool)
        base = model.embed(ids).detach()
        start = table.mean(0) + table.std(0) * torch.randn(length, table.shape[1], generator=gen).to(table.device)
        free = start.clone().to(study.device).requires_grad_(True)
        optimiser = torch.optim.Adam([free], lr=lr)

        def activation(emb_free: torch.Tensor) -> torch.Tensor:
            emb = torch.cat([base[:, :1], emb_free[None], base[:, 1 + length:]], 1)
            return model(ids, mask, embeddings=emb).hidden_states[layer][0, 0, unit]

        for _ in range(steps):
            optimiser.zero_grad()
            loss = -activation(free) + l2 * (free ** 2).sum(-1).mean()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            reached = float(activation(free))
            chosen = nearest_tokens(free, table, exclude=specials)
            projected_ids = ids.clone()
            projected_ids[0, 1:1 + length] = chosen
            projected = float(model(projected_ids, mask).hidden_states[layer][0, 0, unit])
        rows.append({"dataset": m.dataset, "model": m.kind, "layer": layer, "unit": unit,
                     "tokens": " ".join(token_strings(study, m, chosen.tolist())),
                     "activation_optimised": reached, "activation_projected": projected,
                     "activation_dev_mean": float(dev_states[:, layer, unit].mean()),
                     "activation_dev_max": float(dev_states[:, layer, unit].max())})
    return pd.DataFrame(rows)


# ----- the statistical glass box ---------------------------------------------------------------------------

def tfidf_explanations(study: TransformerStudy, m: TrainedTransformer, targets: np.ndarray, seed: int = 0
                       ) -> tuple[dict, dict]:
    """TF-IDF-weighted logistic regression trained on the training texts (words as the data set splits them).

    Returns (an :class:`~aine_lib.attribution.Explanation`, one score per position of each analysis example --
    the same result as an attribution method, so it can be scored for faithfulness to the Transformer; and the
    glass box's own test accuracy). The score of a word is ``tfidf(word) * (coef[target] - mean_c coef[c])``:
    its evidence for the class the Transformer predicted; every piece of a word gets the word's score, special
    tokens get 0.
    """
    data = study.data(m.dataset)
    started = time.perf_counter()
    vectoriser = TfidfVectorizer(analyzer=lambda tokens: [t.lower() for t in tokens], sublinear_tf=True)
    x_train = vectoriser.fit_transform(data.train["tokens"])
    lr = LogisticRegression(max_iter=2000, C=10.0, random_state=seed)
    lr.fit(x_train, data.train["label"].to_numpy())
    test_acc = float((lr.predict(vectoriser.transform(data.test["tokens"])) == data.test["label"].to_numpy()).mean())
    coef = lr.coef_ if lr.coef_.shape[0] > 1 else np.vstack([-lr.coef_[0] / 2, lr.coef_[0] / 2])
    coef = coef - coef.mean(0, keepdims=True)
    vocab = vectoriser.vocabulary_
    rows = study.analysis_rows(m.dataset)
    split = study.encoded(m.dataset, m.kind)["analysis"]
    x_test = vectoriser.transform(data.test["tokens"].iloc[rows])
    scores = []
    for i, (words, target) in enumerate(zip(split.word_index, targets)):
        tokens = data.test["tokens"].iloc[rows[i]]
        row = x_test[i]
        weight = dict(zip(row.indices.tolist(), row.data.tolist()))
        per_word = []
        for t in tokens:
            j = vocab.get(t.lower())
            per_word.append(0.0 if j is None else weight.get(j, 0.0) * coef[int(target), j])
        scores.append(np.array([per_word[w] if 0 <= w < len(per_word) else 0.0 for w in words], dtype=np.float64))
    return (Explanation("tfidf", "tfidf_logistic_regression", scores, list(np.asarray(targets)), signed=True,
                        seconds=time.perf_counter() - started),
            {"dataset": m.dataset, "glass_box": "tfidf_logistic_regression", "test_accuracy": test_acc,
             "n_test": len(data.test), "vocabulary": len(vocab)})
