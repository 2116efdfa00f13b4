"""Sentence-level sentiment: Rotten Tomatoes/SST snippets and the UCI sentences.

* ``sst``: the 10,605 Rotten Tomatoes sentences that SST was built from, with
  their mean human rating in [-4, 4] (Hutto & Gilbert 2014, shipped in the
  vaderSentiment sdist). Binarised by sign; the 37 zero ratings are dropped.
  No official split ships with this copy, so train/dev/test are a fixed
  stratified split (``data.split_seed``).
* ``uci_sentiment``: 1,000 IMDB + 1,000 Amazon + 1,000 Yelp sentences
  (Kotzias et al. 2015), shipped as test fixtures of the npm 'sentiment'
  package. Empty entries and repeated sentences are dropped; a sentence seen
  with both labels is dropped entirely.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from aine_lib.data.sources import ensure_extracted
from aine_lib.data.text import ParseError, TextClassificationData, stratified_split, with_tokens

LABELS = ("negative", "positive")
UCI_DOMAINS = ("imdb", "amazon", "yelp")


def parse_rt_snippets(path: Path) -> pd.DataFrame:
    """``id<TAB>mean rating<TAB>text`` lines (CRLF, no final newline) -> id, rating, text."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise ParseError(f"{path}:{n}: expected 'id<TAB>rating<TAB>text', got {line[:80]!r}")
        try:
            rows.append((int(parts[0]), float(parts[1]), parts[2].strip()))
        except ValueError as exc:
            raise ParseError(f"{path}:{n}: bad id or rating in {line[:80]!r}") from exc
    return pd.DataFrame(rows, columns=["id", "rating", "text"])


def binarise_ratings(df: pd.DataFrame) -> pd.DataFrame:
    """Positive rating -> 1, negative -> 0; zero ratings (no polarity) dropped."""
    df = df[df["rating"] != 0].copy()
    df["label"] = (df["rating"] > 0).astype(int)
    return df.reset_index(drop=True)


def parse_uci_json(paths: dict[str, Path]) -> pd.DataFrame:
    """Merge the per-domain JSON arrays of ``{"text", "class"}`` into text, label, domain."""
    rows = []
    for domain, path in paths.items():
        items = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(items, list):
            raise ParseError(f"{path}: expected a JSON array of {{'text', 'class'}} objects")
        for item in items:
            text, label = (item.get("text") or "").strip(), item.get("class")
            if not text or label is None:
                continue
            if label not in (0, 1):
                raise ParseError(f"{path}: class must be 0, 1 or null, got {label!r}")
            rows.append((text, int(label), domain))
    df = pd.DataFrame(rows, columns=["text", "label", "domain"])
    labels_per_text = df.groupby("text")["label"].nunique()
    conflicting = set(labels_per_text[labels_per_text > 1].index)
    df = df[~df["text"].isin(conflicting)].drop_duplicates("text", keep="first")
    return df.reset_index(drop=True)


def _three_way(df: pd.DataFrame, dev_fraction: float, test_fraction: float, seed: int) -> dict:
    test_idx, dev_idx, train_idx = stratified_split(df["label"].to_numpy(), [test_fraction, dev_fraction], seed)
    return {"train": df.iloc[train_idx].reset_index(drop=True),
            "dev": df.iloc[dev_idx].reset_index(drop=True),
            "test": df.iloc[test_idx].reset_index(drop=True)}


def load_sst(root: Path, dev_fraction: float, test_fraction: float, split_seed: int,
             max_length: int | None = None) -> TextClassificationData:
    folder = ensure_extracted("vader-sentiment", root)
    df = with_tokens(binarise_ratings(parse_rt_snippets(folder / "movieReviewSnippets_GroundTruth.txt")), max_length)
    return TextClassificationData(
        name="sst",
        label_names=LABELS,
        splits=_three_way(df, dev_fraction, test_fraction, split_seed),
        description="Rotten Tomatoes sentences of SST, mean human rating binarised (zeros dropped)",
        source="vaderSentiment==3.3.2 sdist, hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
        notes={"split": "fixed stratified split; SST's official sentence split is not in this copy"},
    )


def load_uci_sentiment(root: Path, dev_fraction: float, test_fraction: float, split_seed: int,
                       max_length: int | None = None) -> TextClassificationData:
    folder = ensure_extracted("npm-sentiment", root)
    df = with_tokens(parse_uci_json({d: folder / f"{d}.json" for d in UCI_DOMAINS}), max_length)
    return TextClassificationData(
        name="uci_sentiment",
        label_names=LABELS,
        splits=_three_way(df, dev_fraction, test_fraction, split_seed),
        description="UCI sentiment sentences (IMDB, Amazon, Yelp), de-duplicated",
        source="npm sentiment@5.0.2, package/test/fixtures/{imdb,amazon,yelp}.json",
    )
