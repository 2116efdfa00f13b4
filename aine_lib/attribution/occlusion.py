"""Leave-one-out as in Jain & Wallace 2019: remove token t, measure the change of the output.

The token is *removed* (the sequence closes up), not replaced by a baseline
token, so the model never sees an input it could not have seen in training;
the score is the total variation distance between the output distributions
with and without the token (for two classes this is J&W's |y_hat - y_hat_-t|).
All single-token deletions of a batch are evaluated together, in chunks.
"""

from __future__ import annotations

import torch

from aine_lib.attribution.base import AttributionMethod


class LeaveOneOut(AttributionMethod):
    name = "loo"

    def __init__(self, model: torch.nn.Module, chunk_size: int = 512):
        super().__init__(model)
        self.chunk_size = chunk_size

    @torch.no_grad()
    def attribute(self, batch, target: torch.Tensor | None = None) -> torch.Tensor:
        ids, mask = batch.ids, batch.mask
        full = torch.softmax(self.model(ids, mask).logits, dim=-1)
        lengths = mask.sum(1)
        B, T = ids.shape
        rows, cols = [], []
        # Longest documents first, so each chunk holds variants of similar length and is trimmed to them.
        for i in sorted(range(B), key=lambda i: -int(lengths[i])):
            n = int(lengths[i])
            if n >= 2:  # deleting the only token leaves no input: score undefined (NaN)
                rows.extend([i] * n)
                cols.extend(range(n))
        scores = torch.full((B, T), float("nan"), device=ids.device)
        scores[~mask] = 0.0
        if not rows:
            return scores
        rows_t = torch.tensor(rows, device=ids.device)
        cols_t = torch.tensor(cols, device=ids.device)
        positions = torch.arange(T, device=ids.device)
        for start in range(0, len(rows), self.chunk_size):
            r, c = rows_t[start:start + self.chunk_size], cols_t[start:start + self.chunk_size]
            # Index map that skips position c: j -> j for j < c, j + 1 for j >= c.
            src = positions.unsqueeze(0) + (positions.unsqueeze(0) >= c.unsqueeze(1)).long()
            src = src.clamp(max=T - 1)
            new_ids = torch.gather(ids[r], 1, src)
            new_mask = positions.unsqueeze(0) < (lengths[r] - 1).unsqueeze(1)
            new_ids = torch.where(new_mask, new_ids, torch.zeros_like(new_ids))
            width = int((lengths[r] - 1).max())       # trailing padding only costs time (RNNs read every step)
            probs = torch.softmax(self.model(new_ids[:, :width], new_mask[:, :width]).logits, dim=-1)
            scores[r, c] = 0.5 * (probs - full[r]).abs().sum(-1)
        return scores
