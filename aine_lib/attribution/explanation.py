"""The one result type every method returns and every plot accepts (inseq's FeatureAttributionOutput).

An :class:`Explanation` holds one method's scores for many examples of one model:

* classifiers: ``scores[i]`` is ``[T_i]`` (one score per input token of example ``i``, padding
  removed); ``targets[i]`` the explained class;
* encoder-decoders: ``scores[i]`` is ``[T_i, S_i]`` (target step x source token);
  ``target_scores[i]`` (gradient methods, rollout) is ``[T_i, T_i]`` over the target prefix
  (lower-triangular); ``targets[i]`` the target token ids and ``target_tokens[i]`` their strings.

``input_ids[i]`` are the model's ids of example ``i`` (real tokens), so erasure metrics can re-run it.
``signed`` says whether a negative score means "against the target"; ``deltas[i]`` is the
completeness (convergence) error where the method defines one (integrated gradients: one
number per example for classifiers, one per target step for encoder-decoders); ``options`` the method's options.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class Explanation:
    method: str
    model: str
    scores: list[np.ndarray]
    targets: list
    tokens: list[list[str]] | None = None
    target_tokens: list[list[str]] | None = None
    target_scores: list[np.ndarray] | None = None
    deltas: np.ndarray | list[np.ndarray] | None = None
    signed: bool = False
    family: str = "classifier"
    options: dict = field(default_factory=dict)
    seconds: float = 0.0
    #: the model's input ids of each example (real tokens only), so the input can be rebuilt and re-run
    input_ids: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        if len(self.scores) != len(self.targets):
            raise ValueError(f"{len(self.scores)} score rows but {len(self.targets)} targets")
        for name in ("tokens", "target_tokens", "target_scores", "input_ids"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.scores):
                raise ValueError(f"{len(value)} {name} rows for {len(self.scores)} examples")
        if self.tokens is not None:
            for i, (s, t) in enumerate(zip(self.scores, self.tokens)):
                if s.shape[-1] != len(t):
                    raise ValueError(f"example {i}: {s.shape[-1]} scores for {len(t)} tokens")

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def target(self) -> np.ndarray:
        """Classifiers: the explained class of every example, as an array."""
        return np.asarray(self.targets)

    # ----- views ----------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """One row per (example, [target step,] source position): tidy scores for pandas/seaborn."""
        rows = []
        for i, s in enumerate(self.scores):
            tokens = self.tokens[i] if self.tokens is not None else [None] * s.shape[-1]
            if s.ndim == 1:
                rows.extend({"example": i, "method": self.method, "target": self.targets[i], "position": j,
                             "token": tokens[j], "score": float(s[j])} for j in range(len(s)))
                continue
            steps = self.target_tokens[i] if self.target_tokens is not None else [None] * s.shape[0]
            rows.extend({"example": i, "method": self.method, "step": t, "target_token": steps[t], "position": j,
                         "token": tokens[j], "score": float(s[t, j])}
                        for t in range(s.shape[0]) for j in range(s.shape[1]))
        return pd.DataFrame(rows)

    def plot(self, example: int = 0, ax=None):
        """One example's heat map: a row of token scores, or the target x source grid of an encoder-decoder."""
        import matplotlib.pyplot as plt

        s = np.asarray(self.scores[example], dtype=float)
        grid = s[None, :] if s.ndim == 1 else s
        if ax is None:
            _, ax = plt.subplots(figsize=(max(3.0, 0.45 * grid.shape[1] + 1.5), max(1.2, 0.35 * grid.shape[0] + 1)))
        finite = np.abs(grid[np.isfinite(grid)])
        limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        image = ax.imshow(grid, cmap="RdBu_r" if self.signed else "Reds", vmin=-limit if self.signed else 0,
                          vmax=limit, aspect="auto")
        ax.grid(False)
        if self.tokens is not None:
            ax.set_xticks(range(grid.shape[1]), self.tokens[example], rotation=60, ha="right", fontsize=8)
        if s.ndim == 2 and self.target_tokens is not None:
            ax.set_yticks(range(grid.shape[0]), self.target_tokens[example], fontsize=8)
            ax.set_ylabel("generated token")
        else:
            ax.set_yticks([])
        ax.set_title(f"{self.method} ({self.model})", fontsize=9)
        ax.figure.colorbar(image, ax=ax, label="score (signed)" if self.signed else "score")
        return ax.figure

    # ----- files ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Explanation":
        with open(path, "rb") as f:
            obj = pickle.load(f)
        if not isinstance(obj, cls):
            raise TypeError(f"{path} holds a {type(obj).__name__}, not an Explanation")
        return obj
