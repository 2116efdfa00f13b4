"""The data sets at a glance: sizes, class balance, lengths, GloVe coverage, wordpiece lengths."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aine_lib.config import StudyConfig
from aine_lib.data import TextClassificationData, load_dataset
from aine_lib.data.pretrained import GloveVectors, load_glove, minilm_facts, minilm_tokenizer
from aine_lib.data.text import SPLITS
from aine_lib.metrics.bootstrap import bootstrap_ci


def load_all(cfg: StudyConfig) -> dict[str, TextClassificationData]:
    """Every data set the config names, in config order."""
    return {name: load_dataset(name, cfg) for name in cfg.data.datasets}


def dataset_summary(datasets: dict[str, TextClassificationData], glove: GloveVectors | None,
                    wordpiece=None, seed: int = 0) -> pd.DataFrame:
    """One row per (dataset, split): n, positive share, length statistics, vocabulary and coverage.

    The length mean has a bootstrap 95% CI; GloVe coverage is measured on the
    split's own tokens (types and running tokens); wordpiece lengths (MiniLM's
    tokenizer, special tokens excluded) show how much longer BERT inputs are.
    """
    rows = []
    for name, data in datasets.items():
        train_vocab = set(t for toks in data.train["tokens"] for t in toks)
        for split in SPLITS:
            df = data.splits[split]
            lengths = df["tokens"].map(len).to_numpy()
            lo, hi = bootstrap_ci(lengths, seed=seed)
            types = set(t for toks in df["tokens"] for t in toks)
            row = {
                "dataset": name,
                "split": split,
                "n": len(df),
                "classes": "/".join(data.label_names),
                "frac_label1": df["label"].mean(),
                "len_mean": lengths.mean(),
                "len_mean_ci_low": lo,
                "len_mean_ci_high": hi,
                "len_median": float(np.median(lengths)),
                "len_p95": float(np.quantile(lengths, 0.95)),
                "len_max": int(lengths.max()),
                "types": len(types),
                "oov_vs_train": len(types - train_vocab) / len(types),
            }
            if glove is not None:
                cov = glove.coverage(df["tokens"])
                row["glove_type_coverage"] = cov["type_coverage"]
                row["glove_token_coverage"] = cov["token_coverage"]
            if wordpiece is not None:
                enc = wordpiece.encode_batch(list(df["text"]), add_special_tokens=False)
                row["wordpiece_len_mean"] = float(np.mean([len(e.ids) for e in enc]))
            if data.has_rationales:
                row["rationale_tokens_mean"] = df["rationale"].map(sum).mean()
            rows.append(row)
    return pd.DataFrame(rows)


def length_table(datasets: dict[str, TextClassificationData]) -> pd.DataFrame:
    """Tidy token lengths: one row per example (dataset, split, length)."""
    frames = [pd.DataFrame({"dataset": name, "split": split, "length": data.splits[split]["tokens"].map(len)})
              for name, data in datasets.items() for split in SPLITS]
    return pd.concat(frames, ignore_index=True)


def data_overview(cfg: StudyConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(summary per dataset/split, tidy lengths, pretrained-asset facts) for the config's data."""
    datasets = load_all(cfg)
    glove = load_glove(cfg.data_root)
    tokenizer = minilm_tokenizer(cfg.data_root)
    summary = dataset_summary(datasets, glove, tokenizer, seed=cfg.seed)
    facts = minilm_facts(cfg.data_root)
    assets = pd.DataFrame([
        {"asset": "GloVe 6B", "detail": f"{len(glove.words):,} words x {glove.dim} dims"},
        {"asset": "all-MiniLM-L6-v2",
         "detail": f"{facts['model_type']}, {facts['layers']} layers, {facts['heads']} heads, "
                   f"d={facts['hidden']}, vocab {facts['vocab_size']:,}"},
    ])
    return summary, length_table(datasets), assets
