"""Transformer encoders: does attention explain the decision, and which explanation method does better?

:class:`TransformerStudy` holds the data, encodings and trained models of one
config: all-MiniLM-L6-v2 fine-tuned on ``transformer.minilm_datasets`` and a
small from-scratch encoder on ``transformer.scratch_datasets`` (the planted
task, whose deciding tokens are known). Experiments are functions of the
study returning tidy DataFrames; every model and every attribution is cached.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from aine_lib.attribution import GENERIC_METHODS, TRANSFORMER_METHODS, get_method
from aine_lib.config import StudyConfig
from aine_lib.data import TextClassificationData, load_dataset
from aine_lib.driver import progress_enabled
from aine_lib.io import ResultCache
from aine_lib.metrics.bootstrap import bootstrap_ci
from aine_lib.metrics.rank import kendall_tau_top_k
from aine_lib.models.rnn_attention import MODEL_CODE_VERSION
from aine_lib.models.training import collate
from aine_lib.models.transformer_training import EncodedSplit
from aine_lib.repro import get_device

#: The methods compared in notebooks 08-10 (``attention_layer_head`` is swept separately).
METHODS = tuple(m for m in TRANSFORMER_METHODS if m != "attention_layer_head") + GENERIC_METHODS
ATTENTION_METHODS = ("attention_cls_last", "attention_cls_mean", "rollout", "flow", "norm", "grad_attention",
                     "chefer")


@dataclass(frozen=True)
class TrainedTransformer:
    dataset: str
    kind: str              # "minilm" or "scratch"
    seed: int
    model: torch.nn.Module
    history: pd.DataFrame
    best_epoch: int

    @property
    def label(self) -> str:
        return f"{self.kind}"


class TransformerStudy:
    """Data, encodings and trained Transformer classifiers for one config."""

    def __init__(self, cfg: StudyConfig, datasets: tuple[str, ...] | None = None):
        self.cfg = cfg
        t = cfg.transformer
        available = [(d, "minilm") for d in t.minilm_datasets] + [(d, "scratch") for d in t.scratch_datasets]
        available = [(d, k) for d, k in available if d in cfg.data.datasets]
        if datasets is not None:
            unknown = set(datasets) - {d for d, _ in available}
            if unknown:
                raise ValueError(f"data sets {sorted(unknown)} are not in transformer.minilm_datasets/"
                                 f"scratch_datasets (and data.datasets) of config {cfg.name!r}")
            available = [(d, k) for d, k in available if d in datasets]
        self.grid = available
        self.device = get_device(cfg.device)
        self.cache = ResultCache(cfg.cache_path)
        self.progress = progress_enabled(cfg)
        self._data: dict[str, TextClassificationData] = {}
        self._encoded: dict[tuple[str, str], dict[str, EncodedSplit]] = {}

    # ----- data ------------------------------------------------------------------
    def data(self, name: str) -> TextClassificationData:
        if name not in self._data:
            self._data[name] = load_dataset(name, self.cfg)
        return self._data[name]

    @cached_property
    def tokenizer(self):
        from aine_lib.data.pretrained import minilm_tokenizer

        return minilm_tokenizer(self.cfg.data_root)

    @cached_property
    def minilm_special(self) -> dict[str, int]:
        from aine_lib.data.pretrained import minilm_dir
        from aine_lib.models.transformer_encoder import _special_ids

        return _special_ids(minilm_dir(self.cfg.data_root))

    def vocabulary(self, name: str):
        return self.data(name).build_vocabulary(min_freq=self.cfg.data.min_freq)

    def encoded(self, name: str, kind: str) -> dict[str, EncodedSplit]:
        """Train/dev/test encodings, and ``analysis``: the (capped, seeded) test rows the experiments use."""
        from aine_lib.models.transformer_training import encode_wordpieces, encode_words

        if (name, kind) not in self._encoded:
            data, t = self.data(name), self.cfg.transformer
            if kind == "minilm":
                sp = self.minilm_special
                enc = {s: encode_wordpieces(getattr(data, s), self.tokenizer, t.max_length, sp["cls_id"],
                                            sp["sep_id"]) for s in ("train", "dev", "test")}
            else:
                vocab = self.vocabulary(name)
                enc = {s: encode_words(getattr(data, s), vocab, t.max_length) for s in ("train", "dev", "test")}
            rows = self.analysis_rows(name)
            test = enc["test"]
            enc["analysis"] = EncodedSplit([test.ids[i] for i in rows], [test.labels[i] for i in rows],
                                           [test.word_index[i] for i in rows])
            self._encoded[(name, kind)] = enc
        return self._encoded[(name, kind)]

    def analysis_rows(self, name: str) -> list[int]:
        n = len(self.data(name).test)
        t = self.cfg.transformer
        cap = t.analysis_examples.get(name, t.max_analysis_examples)
        if cap is None or n <= cap:
            return list(range(n))
        rng = np.random.default_rng(self.cfg.seed)
        return sorted(rng.choice(n, size=cap, replace=False).tolist())

    def rationales(self, name: str, kind: str) -> list[np.ndarray] | None:
        """Per analysis example, the ground-truth rationale per *position* (0 at specials), or None."""
        data = self.data(name)
        if not data.has_rationales:
            return None
        test = data.test
        enc = self.encoded(name, kind)["analysis"]
        out = []
        for i, words in zip(self.analysis_rows(name), enc.word_index):
            r = np.asarray(test["rationale"].iloc[i])
            out.append(np.array([r[w] if w >= 0 else 0 for w in words], dtype=int))
        return out

    # ----- models --------------------------------------------------------------------
    def train(self, name: str, kind: str, seed: int) -> TrainedTransformer:
        from aine_lib.models.transformer_training import ids_fingerprint, trained_transformer

        data = self.data(name)
        enc = self.encoded(name, kind)
        vocab = self.vocabulary(name) if kind == "scratch" else None
        build, train_cfg, key = classifier_recipe(self.cfg, kind, len(data.label_names), vocab)
        key |= {"data": name, "ids": ids_fingerprint([enc["train"], enc["dev"]])}
        model, result = trained_transformer(self.cache, key, build, enc["train"], enc["dev"], train_cfg, seed,
                                            self.device, progress=self.progress)
        return TrainedTransformer(name, kind, seed, model, result.history, result.best_epoch)

    def models(self) -> Iterator[TrainedTransformer]:
        for name, kind in self.grid:
            for seed in self.cfg.transformer.seeds:
                yield self.train(name, kind, seed)

    def model_key(self, m: TrainedTransformer) -> dict:
        """Identifies a trained model (and the analysis rows) for the analysis caches."""
        t = self.cfg.transformer
        enc = self.encoded(m.dataset, m.kind)["analysis"]
        from aine_lib.models.transformer_training import ids_fingerprint

        return {"model": [m.dataset, m.kind, m.seed], "transformer": t.scratch if m.kind == "scratch" else None,
                "max_length": t.max_length, "epochs": t.minilm_epochs if m.kind == "minilm" else t.scratch.epochs,
                "lr": t.minilm_lr if m.kind == "minilm" else t.scratch.lr, "patience": t.patience,
                "data": self.cfg.data, "rows": ids_fingerprint([enc]), "code_version": MODEL_CODE_VERSION}

    def method_kwargs(self, name: str) -> dict:
        t = self.cfg.transformer
        return {"integrated_gradients": {"n_steps": t.ig_steps}, "lime": {"n_samples": t.lime_samples},
                "kernel_shap": {"n_samples": t.shap_samples}}.get(name, {})


def classifier_recipe(cfg: StudyConfig, kind: str, n_classes: int, vocab=None, layers: int | None = None,
                      hidden: int | None = None):
    """``(build, train_cfg, key)`` for a Transformer classifier of ``cfg.transformer``: MiniLM fine-tuning
    (``kind="minilm"``) or the from-scratch encoder over ``vocab`` (``kind="scratch"``; ``layers``/``hidden``
    override the config's size, the feed-forward width scaling with ``hidden``). ``key`` identifies the
    initial weights and the model; the caller adds the data to it."""
    from aine_lib.models.transformer_encoder import EncoderConfig, TransformerClassifier
    from aine_lib.models.transformer_training import TransformerTrainConfig, scratch_vocabulary_ids

    t = cfg.transformer
    if kind == "minilm":
        from aine_lib.data.pretrained import minilm_dir

        path = minilm_dir(cfg.data_root)
        weights = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()[:20]

        def build():
            return TransformerClassifier.from_pretrained(path, n_classes=n_classes)

        train_cfg = TransformerTrainConfig(epochs=t.minilm_epochs, batch_size=t.batch_size, lr=t.minilm_lr,
                                           weight_decay=t.weight_decay, warmup_fraction=t.warmup_fraction,
                                           patience=t.patience)
        return build, train_cfg, {"kind": kind, "checkpoint": weights, "n_classes": n_classes}
    if kind != "scratch":
        raise ValueError(f"unknown Transformer kind {kind!r}; choose 'minilm' or 'scratch'")
    if vocab is None:
        raise ValueError("the scratch encoder needs the training vocabulary (vocab=...)")
    s = t.scratch
    width = hidden or s.hidden
    model_cfg = EncoderConfig(hidden=width, layers=layers or s.layers, heads=s.heads,
                              intermediate=s.intermediate * width // s.hidden, max_positions=max(t.max_length, 8),
                              dropout=s.dropout, n_classes=n_classes, **scratch_vocabulary_ids(vocab))

    def build():
        return TransformerClassifier(model_cfg)

    train_cfg = TransformerTrainConfig(epochs=s.epochs, batch_size=t.batch_size, lr=s.lr, weight_decay=t.weight_decay,
                                       warmup_fraction=t.warmup_fraction, patience=t.patience)
    return build, train_cfg, {"kind": kind, "model": model_cfg}


# ----- performance ---------------------------------------------------------------------

def performance(study: TransformerStudy) -> pd.DataFrame:
    """Dev and test accuracy / macro-F1 of every model, with a 95 % bootstrap CI of test accuracy over test
    examples (one training seed per model in the paper config, so the CI holds the model fixed)."""
    from aine_lib.metrics.bootstrap import bootstrap_ci
    from aine_lib.models.transformer_training import evaluate_split

    rows = []
    for m in study.models():
        enc = study.encoded(m.dataset, m.kind)
        dev, test = evaluate_split(m.model, enc["dev"], study.device), evaluate_split(m.model, enc["test"],
                                                                                      study.device)
        low, high = bootstrap_ci(test["correct"].astype(float), seed=study.cfg.seed)
        rows.append({"dataset": m.dataset, "model": m.kind, "seed": m.seed, "best_epoch": m.best_epoch,
                     "dev_accuracy": dev["accuracy"], "dev_f1": dev["f1"], "test_accuracy": test["accuracy"],
                     "test_accuracy_ci_low": low, "test_accuracy_ci_high": high,
                     "test_f1": test["f1"], "n_test": test["n"],
                     "train_seconds": float(m.history["seconds"].sum())})
    return pd.DataFrame(rows)


# ----- attributions ----------------------------------------------------------------------

def _batches(split: EncodedSplit, batch_size: int):
    for start in range(0, len(split), batch_size):
        yield start, collate(split.ids[start:start + batch_size], split.labels[start:start + batch_size])


def attributions(study: TransformerStudy, m: TrainedTransformer, methods: tuple[str, ...] = METHODS,
                 batch_size: int = 16) -> dict[str, dict]:
    """``{method: {"scores": list[np.ndarray] (one per position), "target": [N], "seconds": float}}``, cached."""
    from tqdm.auto import tqdm

    split = study.encoded(m.dataset, m.kind)["analysis"]
    out = {}
    for name in tqdm(methods, desc=f"attributions {m.dataset}/{m.kind}", disable=not study.progress, leave=False):
        kwargs = study.method_kwargs(name)

        def compute(name=name, kwargs=kwargs) -> dict:
            method = get_method(name, m.model, **kwargs)
            scores, targets = [], []
            started = time.perf_counter()
            for _, batch in _batches(split, batch_size):
                batch = batch.to(study.device)
                with torch.no_grad():
                    target = m.model(batch.ids, batch.mask).logits.argmax(-1)
                s = method.attribute(batch, target).detach().float().cpu().numpy()
                for i, n in enumerate(batch.mask.sum(1).tolist()):
                    scores.append(s[i, :n].astype(np.float64))
                targets.extend(target.cpu().tolist())
            return {"scores": scores, "target": np.asarray(targets), "seconds": time.perf_counter() - started}

        key = study.model_key(m) | {"method": name, "kwargs": kwargs}
        out[name] = study.cache.get_or_compute("transformer_attributions", key, compute)
    return out


def attribution_times(study: TransformerStudy, results: dict[tuple, dict[str, dict]]) -> pd.DataFrame:
    rows = []
    for (dataset, kind, seed), per_method in results.items():
        n = len(study.encoded(dataset, kind)["analysis"])
        for method, r in per_method.items():
            rows.append({"dataset": dataset, "model": kind, "seed": seed, "method": method,
                         "seconds_total": r["seconds"], "seconds_per_example": r["seconds"] / n, "n": n})
    return pd.DataFrame(rows)


# ----- faithfulness -------------------------------------------------------------------------

def scores_fingerprint(result: dict) -> str:
    """SHA-256 of an attribution result's scores and targets (what a faithfulness run deletes)."""
    h = hashlib.sha256()
    for v in result["scores"]:
        h.update(np.asarray(v, dtype=np.float64).tobytes())
        h.update(b"|")
    h.update(np.asarray(result["target"], dtype=np.int64).tobytes())
    return h.hexdigest()[:24]


def faithfulness_per_instance(study: TransformerStudy, m: TrainedTransformer, scores: dict[str, dict],
                              batch_size: int = 16) -> pd.DataFrame:
    """ERASER comprehensiveness and sufficiency per example, fraction, deletion mode and method (cached)."""
    from aine_lib.attribution.captum_methods import special_mask
    from aine_lib.metrics.faithfulness import faithfulness_curves

    from tqdm.auto import tqdm

    t = study.cfg.transformer
    split = study.encoded(m.dataset, m.kind)["analysis"]
    parts = []
    for method, r in tqdm(scores.items(), desc=f"faithfulness {m.dataset}/{m.kind}", disable=not study.progress,
                          leave=False):
        def compute(method=method, r=r) -> pd.DataFrame:
            rows = []
            for start, batch in _batches(split, batch_size):
                batch = batch.to(study.device)
                B, T = batch.ids.shape
                s = torch.zeros(B, T)
                for i in range(B):
                    v = r["scores"][start + i]
                    s[i, : len(v)] = torch.as_tensor(v, dtype=torch.float32)
                target = torch.as_tensor(r["target"][start:start + B], device=study.device)
                df = faithfulness_curves(m.model, batch, s.to(study.device), target, fractions=t.fractions,
                                         modes=t.deletion_modes, mask_id=m.model.cfg.mask_id,
                                         special=special_mask(m.model, batch.ids))
                rows.append(df.assign(example=df["example"] + start))
            return pd.concat(rows, ignore_index=True)

        # the scores themselves are in the key: a method name alone (an ensemble, the glass box) does not say
        # which scores were deleted
        key = study.model_key(m) | {"method": method, "kwargs": study.method_kwargs(method),
                                    "fractions": t.fractions, "modes": t.deletion_modes,
                                    "scores": scores_fingerprint(r)}
        df = study.cache.get_or_compute("transformer_faithfulness", key, compute)
        parts.append(df.assign(method=method))
    return pd.concat(parts, ignore_index=True).assign(dataset=m.dataset, model=m.kind, seed=m.seed)


def faithfulness_table(per_instance: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``tables/faithfulness.csv``: dataset, model, method, mode, metric, value, ci_low, ci_high, n.

    Metrics: comprehensiveness and sufficiency at each fraction (``comp@0.05``...)
    and their AOPC (mean over fractions per example). Higher comprehensiveness
    and lower sufficiency are better. CIs bootstrap the examples.
    """
    rows = []
    keys = ["dataset", "model", "method", "mode"]
    for key, g in per_instance.groupby(keys, sort=False):
        per_example = g.groupby("example")[["comprehensiveness", "sufficiency"]].mean()
        metrics = {"aopc_comprehensiveness": per_example["comprehensiveness"].to_numpy(),
                   "aopc_sufficiency": per_example["sufficiency"].to_numpy()}
        for frac, f in g.groupby("fraction"):
            metrics[f"comprehensiveness@{frac:g}"] = f["comprehensiveness"].to_numpy()
            metrics[f"sufficiency@{frac:g}"] = f["sufficiency"].to_numpy()
        for metric, values in metrics.items():
            lo, hi = bootstrap_ci(values, seed=seed)
            rows.append(dict(zip(keys, key)) | {"metric": metric, "value": float(np.mean(values)), "ci_low": lo,
                                                "ci_high": hi, "n": len(values)})
    return pd.DataFrame(rows)


# ----- agreement: layers and heads, methods, plausibility -----------------------------------------

def content_positions(split: EncodedSplit) -> list[np.ndarray]:
    """Per example of ``split``, the positions of real non-special tokens."""
    return [np.asarray([i for i, w in enumerate(words) if w >= 0]) for words in split.word_index]


def _content_positions(study: TransformerStudy, m: TrainedTransformer) -> list[np.ndarray]:
    """Per analysis example, the positions of real non-special tokens."""
    return content_positions(study.encoded(m.dataset, m.kind)["analysis"])


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
            ref = np.abs(reference["scores"][start + i][pos])
            if floor is not None:
                taus.setdefault((-1, -2), []).append(kendall_tau_top_k(floor["scores"][start + i][pos], ref, k))
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
    from aine_lib.metrics.rank import kendall_tau

    positions = _content_positions(study, m)
    names = list(scores)
    rows = []
    for a in names:
        for b in names:
            vals = []
            for i, pos in enumerate(positions):
                if len(pos) < 2:
                    continue
                vals.append(kendall_tau(np.abs(scores[a]["scores"][i][pos]), np.abs(scores[b]["scores"][i][pos]))[0])
            v = np.asarray(vals, dtype=float)
            rows.append({"dataset": m.dataset, "model": m.kind, "method_a": a, "method_b": b,
                         "tau": float(np.nanmean(v)) if len(v) else np.nan, "n": int(np.isfinite(v).sum())})
    return pd.DataFrame(rows)


def plausibility(study: TransformerStudy, m: TrainedTransformer, scores: dict[str, dict], seed: int = 0
                 ) -> pd.DataFrame:
    """AUPRC of each method's scores against the planted rationale (content tokens only), with a bootstrap CI."""
    from aine_lib.metrics.faithfulness import plausibility_auprc

    rationales = study.rationales(m.dataset, m.kind)
    if rationales is None:
        return pd.DataFrame()
    positions = _content_positions(study, m)
    rows = []
    for method, r in scores.items():
        s = [np.abs(r["scores"][i][pos]) for i, pos in enumerate(positions)]
        g = [rationales[i][pos] for i, pos in enumerate(positions)]
        ap = plausibility_auprc(s, g)
        ap = ap[np.isfinite(ap)]
        lo, hi = bootstrap_ci(ap, seed=seed) if len(ap) else (np.nan, np.nan)
        rows.append({"dataset": m.dataset, "model": m.kind, "seed": m.seed, "method": method,
                     "auprc": float(ap.mean()) if len(ap) else np.nan, "ci_low": lo, "ci_high": hi, "n": len(ap)})
    return pd.DataFrame(rows)


# ----- examples for the heat maps ------------------------------------------------------------------

def token_strings(study: TransformerStudy, m: TrainedTransformer, ids: list[int]) -> list[str]:
    if m.kind == "minilm":
        return [study.tokenizer.id_to_token(i) for i in ids]
    vocab = study.vocabulary(m.dataset)
    names = {m.model.cfg.cls_id: "[CLS]", m.model.cfg.sep_id: "[SEP]", m.model.cfg.mask_id: "[MASK]"}
    return [names.get(i) or vocab.itos[i] for i in ids]


def chosen_examples(study: TransformerStudy, m: TrainedTransformer, scores: dict[str, dict], n: int = 3,
                    min_tokens: int = 6, max_tokens: int = 24) -> list[dict]:
    """``n`` analysis examples for side-by-side heat maps: the first correctly classified ones of moderate
    length, one per predicted class in turn (deterministic: by analysis order). Special tokens are dropped."""
    split = study.encoded(m.dataset, m.kind)["analysis"]
    labels = study.data(m.dataset).label_names
    rationales = study.rationales(m.dataset, m.kind)
    target = next(iter(scores.values()))["target"]
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
                    "scores": {k: np.asarray(v["scores"][i])[keep] for k, v in scores.items()},
                    "rationale": None if rationales is None else rationales[i][keep],
                    "title": f"{m.dataset} · {m.kind} · example {i}: gold {labels[split.labels[i]]}, "
                             f"predicted {labels[target[i]]}"})
    return out


def per_example_aopc(per_instance: pd.DataFrame):
    """Per (dataset, model, mode): a wide table of each example's AOPC (the mean over fractions) with columns
    (``comprehensiveness`` | ``sufficiency``, method) -- what paired comparisons between methods read."""
    per_example = (per_instance.groupby(["dataset", "model", "mode", "method", "example"], sort=False)
                   [["comprehensiveness", "sufficiency"]].mean().reset_index())
    for key, g in per_example.groupby(["dataset", "model", "mode"], sort=False):
        yield key, g.pivot(index="example", columns="method", values=["comprehensiveness", "sufficiency"])


def versus_random(per_instance: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``tables/faithfulness_vs_random.csv``: each method's AOPC minus the random method's, *paired* by example.

    ``comprehensiveness_gain`` = AOPC comp(method) - AOPC comp(random) (> 0 is better);
    ``sufficiency_gain`` = AOPC suff(random) - AOPC suff(method) (> 0 is better).
    Bootstrap CIs of the mean paired difference; ``beats_random`` when a CI lies above 0.
    """
    rows = []
    for (dataset, model, mode), wide in per_example_aopc(per_instance):
        if "random" not in wide["comprehensiveness"]:
            continue
        for method in wide["comprehensiveness"].columns:
            if method == "random":
                continue
            row = {"dataset": dataset, "model": model, "mode": mode, "method": method}
            for metric, sign in (("comprehensiveness", 1.0), ("sufficiency", -1.0)):
                diff = (sign * (wide[metric][method] - wide[metric]["random"])).dropna().to_numpy()
                lo, hi = bootstrap_ci(diff, seed=seed) if len(diff) else (np.nan, np.nan)
                row |= {f"{metric}_gain": float(diff.mean()) if len(diff) else np.nan,
                        f"{metric}_gain_ci_low": lo, f"{metric}_gain_ci_high": hi,
                        f"{metric}_beats_random": bool(lo > 0)}
            row["n"] = int(len(wide))
            rows.append(row)
    return pd.DataFrame(rows)
