"""Explanations of one input side by side: one heat-map row per method (the quickstart's figure)."""

from __future__ import annotations

import matplotlib.pyplot as plt

from aine_lib.attribution import Explanation


def explanation_rows(explanations: dict[str, Explanation], example: int = 0) -> plt.Figure:
    """One row per method: ``explanation.plot(example)`` on a shared figure (classifier explanations)."""
    if not explanations:
        raise ValueError("no explanations to draw")
    n_tokens = len(next(iter(explanations.values())).scores[example])
    fig, axes = plt.subplots(len(explanations), 1, squeeze=False,
                             figsize=(max(4.0, 0.5 * n_tokens + 2.5), 1.25 * len(explanations) + 0.6))
    for ax, explanation in zip(axes[:, 0], explanations.values()):
        explanation.plot(example, ax=ax)
    fig.tight_layout()
    return fig
