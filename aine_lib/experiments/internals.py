"""Inside the model: does attention explain the internal computation? (notebooks 16-17)

Attention maps are one intermediate quantity of a Transformer; these
experiments look at the others and test attention's story against them.
Every function takes a :class:`~aine_lib.experiments.transformers.TransformerStudy`
(or the seq2seq study) and a trained model, returns a tidy DataFrame, and
caches what is expensive.

* :func:`head_importance` -- ablate one self-attention head at a time (its
  output zeroed through ``head_mask``): the drop in accuracy and in the
  probability of the model's own prediction, next to the head's [CLS]
  attention entropy and how often its [CLS] attention is the head that agrees
  best with leave-one-out ("the explanation head").
* :func:`pruning_curve` -- remove heads cumulatively, least important first
  (by the ablation above, measured on the *dev* split), most important first
  or in random order, and track accuracy on the analysis (test) rows.
* :func:`seq2seq_head_importance` -- the same ablation for every encoder,
  decoder and cross-attention head of the encoder-decoder, measured as the
  drop in log p of the tokens the model generated.
* :func:`layer_readout` -- where the decision forms: a logistic-regression
  probe on each layer's [CLS] state (trained on training rows, scored on
  test rows, with a random-label control) and the logit lens (the model's own
  pooler and classifier applied to each layer's [CLS] state).
* :func:`dataset_ngrams` / :func:`optimised_inputs` -- activation
  maximisation for text: the corpus n-grams that most activate chosen
  neurons, and an input optimised in embedding space, projected to its
  nearest tokens (and the activation that projection actually reaches).
* :func:`tfidf_explanations` -- the statistical glass box the seed names:
  TF-IDF-weighted logistic regression coefficients as an explanation of the
  same inputs, to be scored for faithfulness to the Transformer like any other
  method.
* :func:`explanation_ensembles` -- the normalised mean and the rank mean of
  several methods, as new methods (are they more faithful than their members?);
  :func:`seed_stability` -- how much each method's explanation of the same
  input changes between models that differ only in their training seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from aine_lib.experiments.transformers import TrainedTransformer, TransformerStudy, _batches, content_positions
from aine_lib.metrics.bootstrap import bootstrap_ci
from aine_lib.metrics.rank import kendall_tau_top_k
from aine_lib.models.transformer_training import EncodedSplit, predict_probabilities


def _split(study: TransformerStudy, m: TrainedTransformer, split: str, cap: int | None = None,
           seed: int = 0) -> EncodedSplit:
    enc = study.encoded(m.dataset, m.kind)[split]
    if cap is None or len(enc) <= cap:
        return enc
    rows = sorted(np.random.default_rng(seed).choice(len(enc), size=cap, replace=False).tolist())
    return EncodedSplit([enc.ids[i] for i in rows], [enc.labels[i] for i in rows], [enc.word_index[i] for i in rows])


def _head_grid(model) -> list[tuple[int, int]]:
    return [(layer, head) for layer in range(model.cfg.layers) for head in range(model.cfg.heads)]


# ----- heads ---------------------------------------------------------------------------------------

def ablation_effects(study: TransformerStudy, m: TrainedTransformer, split: str = "analysis",
                     cap: int | None = None) -> pd.DataFrame:
    """Per head and row: the probability of the full model's predicted class with that head ablated,
    and whether the ablated model is correct. Cached."""
    enc = _split(study, m, split, cap, seed=study.cfg.seed)

    def compute() -> pd.DataFrame:
        from tqdm.auto import tqdm

        full = predict_probabilities(m.model, enc, study.device)
        pred = full.argmax(1)
        labels = np.asarray(enc.labels)
        rows = [pd.DataFrame({"layer": -1, "head": -1, "example": np.arange(len(enc)),
                              "p_pred": full[np.arange(len(enc)), pred], "correct": pred == labels})]
        for layer, head in tqdm(_head_grid(m.model), desc=f"head ablation {m.dataset}/{m.kind}",
                                disable=not study.progress, leave=False):
            mask = torch.ones(m.model.cfg.layers, m.model.cfg.heads)
            mask[layer, head] = 0.0
            p = predict_probabilities(m.model, enc, study.device, head_mask=mask)
            rows.append(pd.DataFrame({"layer": layer, "head": head, "example": np.arange(len(enc)),
                                      "p_pred": p[np.arange(len(enc)), pred], "correct": p.argmax(1) == labels}))
        return pd.concat(rows, ignore_index=True)

    key = study.model_key(m) | {"split": split, "cap": cap}
    return study.cache.get_or_compute("internals_ablation", key, compute)


@torch.no_grad()
def cls_attention(study: TransformerStudy, m: TrainedTransformer) -> list[np.ndarray]:
    """Per analysis example, ``[layers, heads, T]``: each head's attention from [CLS] (position 0)."""
    enc = study.encoded(m.dataset, m.kind)["analysis"]
    m.model.eval()
    out = []
    for _, b in _batches(enc, 32):
        b = b.to(study.device)
        att = torch.stack(m.model(b.ids, b.mask).attentions, 1)[:, :, :, 0, :]      # [B, L, H, T]
        for i, n in enumerate(b.mask.sum(1).tolist()):
            out.append(att[i, :, :, :n].float().cpu().numpy())
    return out


def head_importance(study: TransformerStudy, m: TrainedTransformer, loo_scores: list[np.ndarray], k: int = 5,
                    seed: int = 0) -> pd.DataFrame:
    """Per head: accuracy and probability drop when it is ablated (CIs over examples), the normalised entropy
    of its [CLS] attention, and ``explanation_share``: the share of examples on which its [CLS] attention has
    the highest top-``k`` Kendall tau with leave-one-out among all heads (ties share the example equally)."""
    effects = ablation_effects(study, m)
    full = effects[effects["layer"] == -1].set_index("example")
    att = cls_attention(study, m)
    positions = content_positions(study.encoded(m.dataset, m.kind)["analysis"])
    grid = _head_grid(m.model)
    taus = np.full((len(att), len(grid)), np.nan)
    entropy = np.full((len(att), len(grid)), np.nan)
    for i, (a, pos) in enumerate(zip(att, positions)):
        if len(pos) < 2:
            continue
        for j, (layer, head) in enumerate(grid):
            row = a[layer, head]
            entropy[i, j] = float(-(row * np.log(np.clip(row, 1e-12, None))).sum() / np.log(len(row)))
            taus[i, j] = kendall_tau_top_k(row[pos], np.abs(loo_scores[i][pos]), k)
    valid = np.isfinite(taus).any(1)
    # credit per example split equally among the heads tied at the best tau (ties are common on short inputs)
    filled = np.where(np.isfinite(taus[valid]), taus[valid], -np.inf)
    winners = filled == filled.max(axis=1, keepdims=True)
    credit = winners / winners.sum(axis=1, keepdims=True)
    rows = []
    for j, (layer, head) in enumerate(grid):
        e = effects[(effects["layer"] == layer) & (effects["head"] == head)].set_index("example")
        drop = (full["p_pred"] - e["p_pred"]).to_numpy()
        acc_drop = (full["correct"].astype(float) - e["correct"].astype(float)).to_numpy()
        lo, hi = bootstrap_ci(drop, seed=seed)
        alo, ahi = bootstrap_ci(acc_drop, seed=seed)
        rows.append({"dataset": m.dataset, "model": m.kind, "seed": m.seed, "layer": layer + 1, "head": head,
                     "accuracy": float(e["correct"].mean()), "accuracy_drop": float(acc_drop.mean()),
                     "accuracy_drop_ci_low": alo, "accuracy_drop_ci_high": ahi,
                     "prob_drop": float(drop.mean()), "prob_drop_ci_low": lo, "prob_drop_ci_high": hi,
                     "cls_entropy": float(np.nanmean(entropy[:, j])), "tau_top_k_loo": float(np.nanmean(taus[:, j])),
                     "explanation_share": float(credit[:, j].mean()) if valid.any() else np.nan,
                     "n": len(drop)})
    return pd.DataFrame(rows)


def pruning_curve(study: TransformerStudy, m: TrainedTransformer, steps: int = 8, seed: int = 0,
                  cap: int | None = None) -> pd.DataFrame:
    """Accuracy on the analysis (test) rows, with a bootstrap CI, after removing ``n`` heads, for ``steps + 1``
    values of ``n`` from 0 to all heads, in three orders: least important first (importance = probability drop
    on at most ``cap`` *dev* rows, so the order is not chosen on the test rows), most important first, and
    random."""
    dev = ablation_effects(study, m, split="dev", cap=cap)
    full = dev[dev["layer"] == -1].set_index("example")["p_pred"]
    drops = {(l, h): float((full - g.set_index("example")["p_pred"]).mean())
             for (l, h), g in dev[dev["layer"] >= 0].groupby(["layer", "head"])}
    grid = _head_grid(m.model)
    least_first = sorted(grid, key=lambda lh: drops[lh])
    orders = {"least_important_first": least_first, "most_important_first": least_first[::-1],
              "random": [grid[i] for i in np.random.default_rng(seed).permutation(len(grid))]}
    test = study.encoded(m.dataset, m.kind)["analysis"]
    labels = np.asarray(test.labels)
    counts = sorted({int(round(x)) for x in np.linspace(0, len(grid), steps + 1)})

    def compute() -> pd.DataFrame:
        rows = []
        for order, heads in orders.items():
            for n in counts:
                mask = torch.ones(m.model.cfg.layers, m.model.cfg.heads)
                for layer, head in heads[:n]:
                    mask[layer, head] = 0.0
                predicted = predict_probabilities(m.model, test, study.device, head_mask=mask).argmax(1)
                correct = (predicted == labels).astype(float)
                lo, hi = bootstrap_ci(correct, seed=seed)
                rows.append({"dataset": m.dataset, "model": m.kind, "seed": m.seed, "order": order,
                             "heads_pruned": n, "fraction_pruned": n / len(grid), "accuracy": float(correct.mean()),
                             "ci_low": lo, "ci_high": hi, "n": len(correct)})
        return pd.DataFrame(rows)

    key = study.model_key(m) | {"pruning": counts, "orders": {k: v for k, v in orders.items()}, "seed": seed}
    return study.cache.get_or_compute("internals_pruning", key, compute)


# ----- where the decision forms -----------------------------------------------------------------------

@torch.no_grad()
def cls_states(study: TransformerStudy, m: TrainedTransformer, split: EncodedSplit) -> np.ndarray:
    """``[N, layers + 1, d]``: the [CLS] hidden state after the embeddings and after every layer."""
    m.model.eval()
    out = []
    for _, b in _batches(split, 32):
        b = b.to(study.device)
        hidden = m.model(b.ids, b.mask).hidden_states
        out.append(torch.stack([h[:, 0] for h in hidden], 1).float().cpu().numpy())
    return np.concatenate(out)


def layer_readout(study: TransformerStudy, m: TrainedTransformer, probe_train: int | None = 2000,
                  seed: int = 0, control_permutations: int = 10) -> pd.DataFrame:
    """Per layer (0 = embeddings): test accuracy of a linear probe on the [CLS] state, of the same probe
    trained on shuffled labels (a control that must stay at chance), and of the logit lens (the model's own
    pooler + classifier on that layer's [CLS] state), plus the lens's agreement with the model's prediction.
    Probes are trained on (at most ``probe_train``) training rows; accuracies carry bootstrap CIs.

    The shuffled-label control is trained on ``control_permutations`` independent permutations of the
    training labels: its row gives their mean accuracy, and ``ci_low``/``ci_high`` are the 2.5 / 97.5 %
    quantiles *over the permutations* (``control_draws`` of them). One permutation is not enough where the
    states fall into class clusters: the probe then learns whatever cluster imbalance that permutation
    has, and its test accuracy varies with a standard deviation of about 0.2 (the planted task)."""
    if control_permutations < 1:
        raise ValueError(f"control_permutations must be at least 1, got {control_permutations}")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = _split(study, m, "train", probe_train, seed=seed)
    test = study.encoded(m.dataset, m.kind)["analysis"]

    def compute() -> pd.DataFrame:
        x_train, x_test = cls_states(study, m, train), cls_states(study, m, test)
        y_train, y_test = np.asarray(train.labels), np.asarray(test.labels)
        rng = np.random.default_rng(seed)
        shuffled = [rng.permutation(y_train) for _ in range(control_permutations)]
        with torch.no_grad():
            final = m.model.classifier(torch.tanh(m.model.pooler(torch.as_tensor(x_test[:, -1]).to(study.device))))
            model_pred = final.argmax(-1).cpu().numpy()
        chance = float(np.bincount(y_test).max() / len(y_test))
        rows = []

        def fit_predict(layer: int, labels: np.ndarray) -> np.ndarray:
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
            probe.fit(x_train[:, layer], labels)
            return probe.predict(x_test[:, layer])

        def add(layer: int, name: str, accuracy: float, lo: float, hi: float, agreement: float, draws: int):
            rows.append({"dataset": m.dataset, "model": m.kind, "seed": m.seed, "layer": layer, "readout": name,
                         "accuracy": float(accuracy), "ci_low": float(lo), "ci_high": float(hi),
                         "agreement_with_model": float(agreement), "chance": chance, "control_draws": draws,
                         "n": len(y_test)})

        def add_scored(layer: int, name: str, pred: np.ndarray):
            correct = (pred == y_test).astype(float)
            add(layer, name, correct.mean(), *bootstrap_ci(correct, seed=seed), (pred == model_pred).mean(), 0)

        for layer in range(x_train.shape[1]):
            add_scored(layer, "probe", fit_predict(layer, y_train))
            preds = [fit_predict(layer, labels) for labels in shuffled]
            accs = np.array([(p == y_test).mean() for p in preds])
            add(layer, "probe_shuffled_labels", accs.mean(), *np.quantile(accs, [0.025, 0.975]),
                np.mean([(p == model_pred).mean() for p in preds]), control_permutations)
            with torch.no_grad():
                h = torch.as_tensor(x_test[:, layer]).to(study.device)
                lens = m.model.classifier(torch.tanh(m.model.pooler(h))).argmax(-1).cpu().numpy()
            add_scored(layer, "logit_lens", lens)
        return pd.DataFrame(rows)

    key = study.model_key(m) | {"readout": "cls", "probe_train": probe_train, "seed": seed,
                                "control_permutations": control_permutations}
    return study.cache.get_or_compute("internals_readout", key, compute)


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
    from aine_lib.experiments.transformers import token_strings
    from aine_lib.models.training import collate

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
    from aine_lib.experiments.transformers import token_strings

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

    Returns (``{"scores": per analysis example one score per position, "target": targets, "seconds": s}`` --
    the same shape as an attribution method, so it can be scored for faithfulness to the Transformer; and the
    glass box's own test accuracy). The score of a word is ``tfidf(word) * (coef[target] - mean_c coef[c])``:
    its evidence for the class the Transformer predicted; every piece of a word gets the word's score, special
    tokens get 0.
    """
    import time

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

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
    return ({"scores": scores, "target": np.asarray(targets), "seconds": time.perf_counter() - started},
            {"dataset": m.dataset, "glass_box": "tfidf_logistic_regression", "test_accuracy": test_acc,
             "n_test": len(data.test), "vocabulary": len(vocab)})


# ----- the encoder-decoder ------------------------------------------------------------------------------

def seq2seq_head_importance(study, m, seed: int = 0) -> pd.DataFrame:
    """Per encoder-self, decoder-self and cross-attention head of a seq2seq model: the mean drop in log p of
    each generated token (teacher-forced on the model's own greedy output) when that head is ablated, with a
    CI resampling sentences, and the share of tokens whose greedy choice changes."""
    from aine_lib.experiments.seq2seq import _batches as s2s_batches, _generated_pairs

    columns = ["task", "variant", "seed", "kind", "layer", "head", "logp_drop", "ci_low", "ci_high",
               "token_change_rate", "n_tokens", "n_sentences"]
    pairs, index = _generated_pairs(study, m)
    if not pairs:       # the model generated nothing but EOS (an untrained smoke model): no decision to ablate
        return pd.DataFrame(columns=columns)
    cfg = m.model.cfg
    kinds = {"encoder_self": cfg.encoder_layers, "decoder_self": cfg.decoder_layers, "cross": cfg.decoder_layers}

    def compute() -> pd.DataFrame:
        rows = []
        with torch.no_grad():
            for start, b in s2s_batches(pairs, 32):
                b = b.to(study.device)
                full = torch.log_softmax(m.model(b.src, b.src_mask, b.tgt_in, b.tgt_mask).logits, -1)
                tokens = b.tgt_out.clamp(min=0)
                base = full.gather(-1, tokens[..., None])[..., 0]
                steps = b.tgt_mask.clone()
                steps[torch.arange(len(b)), b.tgt_mask.sum(1) - 1] = False        # the EOS step is left out
                for kind, layers in kinds.items():
                    for layer in range(layers):
                        for head in range(cfg.heads):
                            masks = {k: torch.ones(n, cfg.heads, device=study.device) for k, n in kinds.items()}
                            masks[kind][layer, head] = 0.0
                            out = torch.log_softmax(m.model(b.src, b.src_mask, b.tgt_in, b.tgt_mask,
                                                            head_masks=masks).logits, -1)
                            drop = base - out.gather(-1, tokens[..., None])[..., 0]
                            changed = out.argmax(-1) != tokens
                            for i in range(len(b)):
                                s = steps[i]
                                rows.append({"kind": kind, "layer": layer + 1, "head": head,
                                             "example": index[start + i],
                                             "drop_sum": float(drop[i][s].sum()), "changed_sum": float(changed[i][s].sum()),
                                             "tokens": int(s.sum())})
        return pd.DataFrame(rows)

    key = study.model_key(m) | {"what": "head_ablation"}
    per = study.cache.get_or_compute("internals_seq2seq_ablation", key, compute)
    out = []
    for (kind, layer, head), g in per.groupby(["kind", "layer", "head"], sort=False):
        g = g[g["tokens"] > 0]
        # the token-weighted mean, and its CI from resampling sentences (ratio of resampled sums)
        drops, tokens = g["drop_sum"].to_numpy(), g["tokens"].to_numpy()
        rng = np.random.default_rng(seed)
        boot = [drops[idx].sum() / tokens[idx].sum()
                for idx in (rng.integers(0, len(g), len(g)) for _ in range(1000))]
        lo, hi = (float(x) for x in np.quantile(boot, [0.025, 0.975]))
        out.append({"task": m.task, "variant": m.variant, "seed": m.seed, "kind": kind, "layer": layer, "head": head,
                    "logp_drop": float(g["drop_sum"].sum() / g["tokens"].sum()), "ci_low": lo, "ci_high": hi,
                    "token_change_rate": float(g["changed_sum"].sum() / g["tokens"].sum()),
                    "n_tokens": int(g["tokens"].sum()), "n_sentences": len(g)})
    return pd.DataFrame(out, columns=columns)


# ----- ensembles ----------------------------------------------------------------------------------------

def explanation_ensembles(scores: dict[str, dict], members: tuple[str, ...], split: EncodedSplit) -> dict[str, dict]:
    """Two ensembles of ``members`` as new methods (same result shape as an attribution method):

    * ``ensemble_mean``: per example, each member's scores divided by their largest absolute value over the
      content tokens, then averaged (signs kept: evidence for and against the predicted class cancel);
    * ``ensemble_rank``: the mean over members of each token's rank (0 = lowest score, 1 = highest) among the
      content tokens.

    Special tokens get 0 in both (they are never erased or attributed).
    """
    missing = [m for m in members if m not in scores]
    if missing:
        raise ValueError(f"ensemble members {missing} have no scores; compute them first (available: {sorted(scores)})")
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {list(members)}")
    from scipy.stats import rankdata

    positions = content_positions(split)
    target = scores[members[0]]["target"]
    mean_scores, rank_scores = [], []
    for i, pos in enumerate(positions):
        n = len(scores[members[0]]["scores"][i])
        mean, rank = np.zeros(n), np.zeros(n)
        if len(pos):
            for name in members:
                v = np.asarray(scores[name]["scores"][i], dtype=float)[pos]
                scale = np.abs(v).max()
                mean[pos] += (v / scale if scale > 0 else v) / len(members)
                rank[pos] += ((rankdata(v) - 1) / max(len(pos) - 1, 1)) / len(members)
        mean_scores.append(mean)
        rank_scores.append(rank)
    seconds = float(sum(scores[name]["seconds"] for name in members))
    return {"ensemble_mean": {"scores": mean_scores, "target": target, "seconds": seconds},
            "ensemble_rank": {"scores": rank_scores, "target": target, "seconds": seconds}}


def seed_stability(study: TransformerStudy, dataset: str, kind: str, seeds: tuple[int, ...],
                   methods: tuple[str, ...], seed: int = 0) -> pd.DataFrame:
    """Per method: mean Kendall tau between the explanations of the same analysis examples by models trained
    with different seeds (every pair of seeds; content tokens; CI resampling examples), next to how often the
    seeds' models predict the same class."""
    from aine_lib.experiments.transformers import attributions
    from aine_lib.metrics.rank import kendall_tau

    if len(seeds) < 2:
        raise ValueError(f"seed stability needs at least 2 seeds, got {list(seeds)}")
    models = [study.train(dataset, kind, s) for s in seeds]
    per_seed = [attributions(study, m, methods) for m in models]
    positions = content_positions(study.encoded(dataset, kind)["analysis"])
    pairs = [(a, b) for a in range(len(seeds)) for b in range(a + 1, len(seeds))]
    rows = []
    for method in methods:
        per_example = []
        for i, pos in enumerate(positions):
            if len(pos) < 2:
                continue
            taus = [kendall_tau(per_seed[a][method]["scores"][i][pos], per_seed[b][method]["scores"][i][pos])[0]
                    for a, b in pairs]
            per_example.append(np.nanmean(taus) if np.isfinite(taus).any() else np.nan)
        v = np.asarray(per_example, dtype=float)
        v = v[np.isfinite(v)]
        lo, hi = bootstrap_ci(v, seed=seed) if len(v) else (np.nan, np.nan)
        same = np.mean([(per_seed[a][method]["target"] == per_seed[b][method]["target"]).mean() for a, b in pairs])
        rows.append({"dataset": dataset, "model": kind, "method": method, "seeds": len(seeds),
                     "tau_between_seeds": float(v.mean()) if len(v) else np.nan, "ci_low": lo, "ci_high": hi,
                     "same_prediction": float(same), "n": len(v)})
    return pd.DataFrame(rows)


def ensemble_vs_best_member(per_instance: pd.DataFrame, members: tuple[str, ...],
                            ensembles: tuple[str, ...] = ("ensemble_mean", "ensemble_rank"),
                            seed: int = 0) -> pd.DataFrame:
    """Is an ensemble more faithful than its best member? Paired by example, per data set, model and mode.

    Per example, AOPC comprehensiveness and sufficiency (the mean over fractions, as in
    :func:`~aine_lib.experiments.transformers.versus_random`). The best member is the one with the best mean
    over these same examples (highest comprehensiveness, lowest sufficiency), which favours the member
    (its lead is partly selection noise), so the test is conservative for the ensemble. ``gain`` is the mean
    paired difference signed so that > 0 means the ensemble is better, with a bootstrap CI;
    ``verdict`` is ``better`` / ``worse`` when the CI excludes 0, else ``no_difference``.
    """
    missing = [m for m in (*members, *ensembles) if m not in set(per_instance["method"])]
    if missing:
        raise ValueError(f"no faithfulness rows for {missing}; score the members and the ensembles first")
    from aine_lib.experiments.transformers import per_example_aopc

    rows = []
    for (dataset, model, mode), wide in per_example_aopc(per_instance):
        for metric, sign in (("comprehensiveness", 1.0), ("sufficiency", -1.0)):
            table = wide[metric]
            means = table[list(members)].mean()
            best = str(means.idxmax() if sign > 0 else means.idxmin())
            for ens in ensembles:
                diff = (sign * (table[ens] - table[best])).dropna().to_numpy()
                lo, hi = bootstrap_ci(diff, seed=seed) if len(diff) else (np.nan, np.nan)
                rows.append({"dataset": dataset, "model": model, "mode": mode, "metric": f"aopc_{metric}",
                             "ensemble": ens, "ensemble_value": float(table[ens].mean()), "best_member": best,
                             "best_member_value": float(table[best].mean()),
                             "gain": float(diff.mean()) if len(diff) else np.nan, "gain_ci_low": lo,
                             "gain_ci_high": hi,
                             "verdict": "better" if lo > 0 else ("worse" if hi < 0 else "no_difference"),
                             "n": len(diff)})
    return pd.DataFrame(rows)


def ensembles_table(faithfulness: pd.DataFrame, stability: pd.DataFrame, mode: str = "remove") -> pd.DataFrame:
    """``tables/ensembles.csv``: part (``explanation_ensemble`` / ``seed_stability``), dataset, model, method,
    metric, value, ci_low, ci_high, n. The ensemble part keeps the AOPC rows of one deletion ``mode``."""
    f = faithfulness[(faithfulness["mode"] == mode) & faithfulness["metric"].str.startswith("aopc")]
    parts = [f.assign(part="explanation_ensemble")[["part", "dataset", "model", "method", "metric", "value",
                                                     "ci_low", "ci_high", "n"]]]
    if len(stability):
        parts.append(stability.assign(part="seed_stability", metric="tau_between_seeds",
                                      value=stability["tau_between_seeds"])[
            ["part", "dataset", "model", "method", "metric", "value", "ci_low", "ci_high", "n"]])
    return pd.concat(parts, ignore_index=True)
