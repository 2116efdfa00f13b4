"""Conclusions figure (notebook 15).

``f(df) -> Figure``: they draw tidy DataFrames; they never compute or save.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator


def evidence_coverage(evidence: pd.DataFrame) -> plt.Figure:
    """Notebook 15: per question, how many pieces of evidence this run measured and how many are pending."""
    counts = (evidence.assign(state=np.where(evidence["pending"], "pending", "measured"))
              .groupby(["question_number", "question", "state"]).size().unstack(fill_value=0)
              .reindex(columns=["measured", "pending"], fill_value=0))
    labels = [f"{n}. {q}" for n, q in counts.index]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(labels) + 1.2))
    y = np.arange(len(labels))
    ax.barh(y, counts["measured"], color="C0", label="measured in this run")
    ax.barh(y, counts["pending"], left=counts["measured"], color="lightgrey", label="notebook not run yet")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("pieces of evidence")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
