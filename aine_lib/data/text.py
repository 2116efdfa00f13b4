"""Tokenisation, vocabulary and the data set type shared by every task.

One word tokeniser (:func:`tokenize`) and one :class:`Vocabulary` serve all
from-scratch models, so attention over "tokens" means the same thing on every
task. Pretrained models keep their own wordpiece tokenisers.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

PAD, UNK = "<pad>", "<unk>"
SPLITS = ("train", "dev", "test")
_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]", re.UNICODE)


class ParseError(ValueError):
    """A raw file does not have the layout its parser expects."""


def tokenize(text: str) -> list[str]:
    """Lower-cased words (with inner apostrophes) and single punctuation marks."""
    return _TOKEN_RE.findall(text.lower())


class Vocabulary:
    """Token <-> id map; ids 0 and 1 are ``<pad>`` and ``<unk>``; order is deterministic."""

    def __init__(self, tokens: Sequence[str]):
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {list(tokens[:2])}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary may not list a token twice")
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    pad_id = 0
    unk_id = 1

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1,
              max_size: int | None = None) -> "Vocabulary":
        """Most frequent first, ties broken alphabetically, so the same corpus gives the same ids."""
        counts = Counter(t for tokens in token_lists for t in tokens)
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in (PAD, UNK)),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]


@dataclass
class TextClassificationData:
    """A classification task with fixed train/dev/test splits.

    Each split is a DataFrame with columns ``text``, ``tokens`` (list of str)
    and ``label`` (int index into ``label_names``); tasks with known deciding
    tokens add ``rationale`` (list of 0/1, one per token).
    """

    name: str
    label_names: tuple[str, ...]
    splits: dict[str, pd.DataFrame]
    description: str
    source: str
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"data set {self.name!r} lacks split(s) {missing}")
        for split, df in self.splits.items():
            for col in ("text", "tokens", "label"):
                if col not in df.columns:
                    raise ValueError(f"{self.name}/{split} lacks column {col!r}")
            bad = ~df["label"].between(0, len(self.label_names) - 1)
            if bad.any():
                raise ValueError(f"{self.name}/{split} has labels outside 0..{len(self.label_names) - 1}")

    @property
    def train(self) -> pd.DataFrame:
        return self.splits["train"]

    @property
    def dev(self) -> pd.DataFrame:
        return self.splits["dev"]

    @property
    def test(self) -> pd.DataFrame:
        return self.splits["test"]

    @property
    def has_rationales(self) -> bool:
        return "rationale" in self.train.columns

    def build_vocabulary(self, min_freq: int = 1, max_size: int | None = None) -> Vocabulary:
        """Vocabulary from the training split only (dev/test words may be unknown)."""
        return Vocabulary.build(self.train["tokens"], min_freq=min_freq, max_size=max_size)


def with_tokens(df: pd.DataFrame, max_length: int | None = None) -> pd.DataFrame:
    """Add a ``tokens`` column (truncated to ``max_length``) and drop rows with no token."""
    df = df.copy()
    df["tokens"] = [tokenize(t)[:max_length] if max_length else tokenize(t) for t in df["text"]]
    return df[df["tokens"].map(len) > 0].reset_index(drop=True)


def stratified_split(labels: Sequence[int], fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Row indices for len(fractions)+1 parts (the last takes the rest), stratified by label.

    Each class is shuffled with ``seed`` and cut at the same fractions, so the
    class balance of every part matches the whole; indices come back sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        bounds = np.round(np.cumsum(fractions) * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, bounds)):
            part.extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=int)) for p in parts]


def stratified_subsample(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """At most ``n`` rows, keeping the class balance; the same ``seed`` keeps the same rows."""
    if n is None or len(df) <= n:
        return df
    (keep, _rest) = stratified_split(df["label"].to_numpy(), [n / len(df)], seed)
    return df.iloc[keep].reset_index(drop=True)
