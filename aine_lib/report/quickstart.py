"""The quickstart's one sentence of findings, rendered from its ERASER summary table (no number typed by hand)."""

from __future__ import annotations

import pandas as pd


def eraser_sentence(summary: pd.DataFrame) -> str:
    """Which method's top tokens the model needs most, and where raw attention ranks, from ``eraser_summary``."""
    best = summary.iloc[0]
    n = int(best["n_sentences"])
    text = (f"On these {n} sentences, removing the top tokens of **{best['method']}** lowers the predicted class's "
            f"probability most (AOPC comprehensiveness {best['comprehensiveness']:.3f}, sufficiency "
            f"{best['sufficiency']:.3f})")
    if "attention" in set(summary["method"]):
        rank = int(summary.index[summary["method"] == "attention"][0]) + 1
        att = summary.loc[summary["method"] == "attention"].iloc[0]
        text += (f"; raw attention ranks {rank} of {len(summary)} (comprehensiveness "
                 f"{att['comprehensiveness']:.3f})")
    return text + f". With {n} sentences this is an illustration, not a measurement."
