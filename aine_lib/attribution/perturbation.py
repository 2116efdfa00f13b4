"""Perturbation methods: remove or replace tokens and watch the output.

* ``loo`` (leave-one-out, Jain & Wallace 2019) -- token ``t`` is *removed* (the sequence closes up),
  not replaced, so the model never sees an input it could not have seen in training. The score is
  chosen by ``output``: ``"tvd"`` (classifiers' default, J&W's unsigned measure) the total variation
  distance between the output distributions with and without the token (for two classes
  ``|ŷ - ŷ_-t|``); ``"probability"`` the signed drop of the explained class's probability;
  ``"log_probability"`` (encoder-decoders' default and only choice) the signed drop of
  ``log p(y_t)`` at every target step at once. All single-token deletions of a batch are evaluated
  together, in chunks. A one-token input has no deletion: its score is NaN.
* ``occlusion`` -- Captum ``FeatureAblation``, one token at a time replaced by the reference token.
* ``lime`` and ``kernel_shap`` -- Captum ``Lime`` (Ridge surrogate) / ``KernelShap`` with one
  interpretable feature per token and the reference token as "absent" (``n_samples`` perturbations).
* ``random`` -- uniform random scores seeded by each example's ids: the floor of every comparison.

Positions of special tokens are never perturbed (score 0) by occlusion, LIME, SHAP and random.
"""

from __future__ import annotations

import hashlib

import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import FeatureAblation, KernelShap, Lime

from aine_lib.attribution.base import TOKENS_PER_CALL, AttributionMethod, rows_per_call
from aine_lib.attribution.gradients import _EmbeddingMethod, forward_args
from aine_lib.models.protocol import TokenBatch

LOO_OUTPUTS = ("tvd", "probability", "log_probability")


class LeaveOneOut(AttributionMethod):
    name = "loo"
    families = ("classifier", "seq2seq")

    def __init__(self, adapter, chunk_size: int | None = None, output: str | None = None,
                 tokens_per_call: int = TOKENS_PER_CALL):
        super().__init__(adapter)
        self.chunk_size, self.tokens_per_call = chunk_size, tokens_per_call   # speed only: not in options()
        self.output = output or ("log_probability" if self.is_seq2seq else "tvd")
        allowed = ("log_probability",) if self.is_seq2seq else ("tvd", "probability")
        if self.output not in allowed:
            raise ValueError(f"loo output must be one of {allowed} for a {adapter.family} model, got {output!r}")

    @property
    def signed(self) -> bool:   # type: ignore[override]
        return self.output != "tvd"

    def options(self) -> dict:
        return {"output": self.output}

    @torch.no_grad()
    def attribute(self, batch, target: torch.Tensor | None = None) -> torch.Tensor:
        if self.is_seq2seq:
            return self._seq2seq(batch)
        if self.output == "probability" and target is None:
            raise ValueError("loo with output='probability' needs the class to explain (target)")
        ids, mask = batch.ids, batch.mask
        full = torch.softmax(self.adapter.logits(batch), dim=-1)
        lengths = mask.sum(1)
        B, T = ids.shape
        rows, cols = [], []
        # Longest documents first, so each chunk holds variants of similar length and is trimmed to them.
        first = mask.long().argmax(1)            # each row's first real position (0 unless left-padded)
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
        extra = getattr(batch, "extra", {})
        start = 0
        while start < len(rows):
            # rows are longest first: the chunk's first row sets its width, hence how many fit the budget
            size = rows_per_call(int(lengths[rows[start]]) - 1, self.tokens_per_call)
            if self.chunk_size is not None:
                size = min(size, self.chunk_size)
            r, c = rows_t[start:start + size], cols_t[start:start + size]
            start += size
            # Index map that skips position c: j -> j for j < c, j + 1 for j >= c.
            src = positions.unsqueeze(0) + (positions.unsqueeze(0) >= c.unsqueeze(1)).long()
            src = (src + first[r].unsqueeze(1)).clamp(max=T - 1)
            new_mask = positions.unsqueeze(0) < (lengths[r] - 1).unsqueeze(1)
            new_ids = torch.where(new_mask, torch.gather(ids[r], 1, src), torch.full_like(src, self.adapter.pad_id))
            width = int((lengths[r] - 1).max())       # trailing padding only costs time (RNNs read every step)
            moved = self.adapter.pad_like_model(new_ids[:, :width], new_mask[:, :width],
                                                *(torch.gather(v[r], 1, src)[:, :width] for v in extra.values()))
            reduced = TokenBatch(moved[0], moved[1], dict(zip(extra, moved[2:])))
            probs = torch.softmax(self.adapter.logits(reduced), dim=-1)
            at = c + first[r]                     # the deleted position in the original row
            if self.output == "tvd":
                scores[r, at] = 0.5 * (probs - full[r]).abs().sum(-1)
            else:
                t = target[r].view(-1, 1)
                scores[r, at] = (full[r].gather(1, t) - probs.gather(1, t)).squeeze(1)
        return scores

    def _seq2seq(self, batch) -> torch.Tensor:
        full = self.adapter.target_log_probs(batch)
        B, S = batch.src.shape
        out = torch.zeros(B, batch.tgt_in.shape[1], S, device=batch.src.device)
        lengths = batch.src_mask.sum(1)
        for s in range(S):
            keep = torch.ones_like(batch.src_mask)
            keep[:, s] = False
            rows = (lengths > 1) & batch.src_mask[:, s]
            if not bool(rows.any()):
                continue
            idx = rows.nonzero().squeeze(1)
            reduced = self.adapter.without_source_positions(batch, idx, keep)
            out[idx, :, s] = full[idx] - self.adapter.target_log_probs(reduced)
        return out * self.adapter.step_mask(batch)


def _feature_mask(batch) -> torch.Tensor:
    """``[B, T, 1]``: token position t is feature t (broadcast over embedding dimensions)."""
    B, T = batch.ids.shape
    return torch.arange(T, device=batch.ids.device).expand(B, T).unsqueeze(-1)


def _example_seed(ids: torch.Tensor) -> int:
    """A seed from an example's ids: the same input always gets the same sampled scores."""
    return int(hashlib.sha256(ids.cpu().numpy().tobytes()).hexdigest()[:8], 16)


class Occlusion(_EmbeddingMethod):
    name = "occlusion"

    def __init__(self, adapter, perturbations_per_eval: int | None = None, tokens_per_call: int = TOKENS_PER_CALL):
        super().__init__(adapter)
        # speed only (not in options()): None fills tokens_per_call
        self.perturbations_per_eval, self.tokens_per_call = perturbations_per_eval, tokens_per_call

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        emb, ref = self._inputs(batch)
        scores = torch.zeros(batch.ids.shape, dtype=emb.dtype, device=emb.device)
        extra = getattr(batch, "extra", {})
        lengths = batch.mask.sum(1)
        if self.adapter.padding_side == "right":
            # length buckets of 8 rows cut to their longest: no call occludes or carries padding
            groups = torch.argsort(lengths, stable=True).split(8)
        else:
            groups = (torch.arange(len(lengths), device=lengths.device),)
        for rows in groups:
            w = int(lengths[rows].max()) if self.adapter.padding_side == "right" else batch.ids.shape[1]
            sub = TokenBatch(batch.ids[rows, :w], batch.mask[rows, :w], {k: v[rows, :w] for k, v in extra.items()})
            per_eval = self.perturbations_per_eval or rows_per_call(sub.ids.numel(), self.tokens_per_call)
            with torch.no_grad():
                attr = FeatureAblation(self._function(sub)).attribute(
                    emb[rows, :w], baselines=ref[rows, :w], target=target[rows], additional_forward_args=forward_args(sub),
                    feature_mask=_feature_mask(sub), perturbations_per_eval=per_eval)
            # every embedding dimension of a token carries the same score: read one
            scores[rows, :w] = attr[..., 0].detach().to(scores.dtype)
        return self._masked(scores, batch.mask & ~self.adapter.special_mask(batch.ids))


class _SampledSurrogate(_EmbeddingMethod):
    """LIME / KernelSHAP: one example at a time (Captum needs one feature mask per call)."""

    def __init__(self, adapter, n_samples: int = 200, perturbations_per_eval: int | None = None, seed: int = 0,
                 tokens_per_call: int = TOKENS_PER_CALL):
        super().__init__(adapter)
        self.n_samples, self.seed = n_samples, seed
        # speed only (not in options()): None fills tokens_per_call
        self.perturbations_per_eval, self.tokens_per_call = perturbations_per_eval, tokens_per_call

    def options(self) -> dict:
        return {"n_samples": self.n_samples, "seed": self.seed}

    def _explainer(self, function):
        raise NotImplementedError

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        emb, ref = self._inputs(batch)
        tokens = batch.mask & ~self.adapter.special_mask(batch.ids)
        out = torch.zeros(batch.ids.shape, dtype=emb.dtype, device=emb.device)
        explainer = self._explainer(self._function(batch))
        args = forward_args(batch)
        for b in range(len(batch.ids)):
            real = batch.mask[b].nonzero().squeeze(1)
            lo, hi = int(real.min()), int(real.max()) + 1          # the real span (right or left padding)
            n = hi - lo
            # One feature per real position. A special token's reference equals the token, so switching it
            # "off" changes nothing and its weight is ~0; it is zeroed below anyway.
            fmask = torch.arange(n, device=emb.device).unsqueeze(0).unsqueeze(-1)
            with torch.random.fork_rng(devices=[]), torch.no_grad():   # the caller's global RNG is left as it was
                torch.manual_seed(self.seed + _example_seed(batch.ids[b, lo:hi]))
                attr = explainer.attribute(
                    emb[b:b + 1, lo:hi], baselines=ref[b:b + 1, lo:hi], target=target[b:b + 1],
                    additional_forward_args=tuple(a[b:b + 1, lo:hi] for a in args),
                    feature_mask=fmask, n_samples=self.n_samples,
                    perturbations_per_eval=self.perturbations_per_eval or min(self.n_samples,
                                                                              rows_per_call(n, self.tokens_per_call)))
            out[b, lo:hi] = attr[0, :, 0]
        return self._masked(out.detach(), tokens)


class LimeMethod(_SampledSurrogate):
    name = "lime"

    def _explainer(self, function):
        # Ridge(alpha=1), the surrogate of the original LIME package; Captum's default Lasso zeroes small effects.
        return Lime(function, interpretable_model=SkLearnRidge(alpha=1.0))


class KernelShapMethod(_SampledSurrogate):
    name = "kernel_shap"

    def _explainer(self, function):
        return KernelShap(function)


class RandomScores(AttributionMethod):
    """Uniform random scores, seeded by each example's token ids: the floor of every comparison."""

    name = "random"
    families = ("classifier", "seq2seq")

    def __init__(self, adapter, seed: int = 0):
        super().__init__(adapter)
        self.seed = seed

    def options(self) -> dict:
        return {"seed": self.seed}

    def attribute(self, batch, target=None) -> torch.Tensor:
        if self.is_seq2seq:
            mask = self.adapter.step_mask(batch)
            out = torch.zeros(mask.shape, device=mask.device)
            for b in range(len(batch)):        # seeded by the example's own source ids, whatever its batch
                t, n = int(batch.tgt_mask[b].sum()), int(batch.src_mask[b].sum())
                gen = torch.Generator().manual_seed(self.seed + _example_seed(batch.src[b][batch.src_mask[b]]))
                out[b].masked_scatter_(mask[b], torch.rand(t * n, generator=gen).to(out.device))
            return out
        out = torch.zeros(batch.ids.shape, dtype=torch.float32, device=batch.ids.device)
        for b in range(len(batch.ids)):
            real = batch.mask[b]
            gen = torch.Generator().manual_seed(self.seed + _example_seed(batch.ids[b][real]))
            out[b, real] = torch.rand(int(real.sum()), generator=gen).to(out.device)
        return self._masked(out, batch.mask & ~self.adapter.special_mask(batch.ids))
