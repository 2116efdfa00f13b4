"""Distances between discrete distributions over the last dimension, batched in torch.

* :func:`jensen_shannon` -- natural log, so ``0 <= JSD <= ln 2``; exact zeros
  (padding, one-hot attention) are safe in the value and in the gradient.
* :func:`total_variation` -- ``0.5 * L1``, in ``[0, 1]``; for two classes it
  equals Jain & Wallace's ``|Δŷ|``.
"""

from __future__ import annotations

import math

import torch

LN2 = math.log(2.0)


def _kl_to_mixture(x: torch.Tensor, log_m: torch.Tensor) -> torch.Tensor:
    """Elementwise ``x * (log x - log m)``, with ``0 log 0 = 0`` and a finite gradient at 0."""
    tiny = torch.finfo(x.dtype).tiny
    # The log argument is clamped so the branch torch.where discards has no inf/nan in its backward.
    return torch.where(x > 0, x * (torch.log(x.clamp_min(tiny)) - log_m), torch.zeros_like(x))


def jensen_shannon(p: torch.Tensor, q: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Jensen-Shannon divergence over the last dim (natural log), broadcasting the leading dims.

    ``mask`` (bool, True = real entry) excludes positions from the sum, e.g.
    padding. The result is clamped to ``[0, ln 2]`` to remove rounding error.
    """
    if not torch.is_floating_point(p) or not torch.is_floating_point(q):
        raise TypeError(f"jensen_shannon needs floating-point tensors, got {p.dtype} and {q.dtype}")
    p, q = torch.broadcast_tensors(p, q)
    m = 0.5 * (p + q)
    log_m = torch.log(m.clamp_min(torch.finfo(m.dtype).tiny))
    terms = 0.5 * (_kl_to_mixture(p, log_m) + _kl_to_mixture(q, log_m))
    if mask is not None:
        terms = torch.where(mask.bool(), terms, torch.zeros_like(terms))
    return terms.sum(-1).clamp(0.0, LN2)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Total variation distance ``0.5 * sum |p - q|`` over the last dim (in ``[0, 1]`` for distributions)."""
    return 0.5 * (p - q).abs().sum(-1)
