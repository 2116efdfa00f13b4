"""Attention erasure with the encoder held fixed (Serrano & Smith 2019, "Is Attention Interpretable?").

Like :mod:`aine_lib.interventions.attention`, every function takes a ``decode``
callable ``(hidden [N, T, H], attention [N, T]) -> logits [N, C]`` and treats
the hidden states as constants. *Erasing* an attention item sets its weight to
0 and renormalises the remaining weights to sum to 1 (S&S, section 3); the
hidden states, and so what each item "says", are unchanged.

* :func:`erase_and_renormalise` -- the basic operation, for any set of items.
* :func:`single_erasure` -- S&S section 4: erase the top-weighted item ``i*``
  and, separately, one random other item ``r``; the change in the output
  distribution (JSD) and whether the decision flips for each.
* :func:`ranking_orders` -- the orders of S&S section 5: random, attention,
  gradient of the decision w.r.t. attention, attention x gradient.
* :func:`fraction_until_flip` -- erase items in a given order until the
  decision flips; the fraction of items removed. All prefixes of all
  instances are evaluated batched (chunked to bound memory).

All randomness comes from an explicit ``torch.Generator``.
"""

from __future__ import annotations

from typing import Callable

import torch

from aine_lib.interventions.attention import _check_attention, _check_hidden, output_distribution
from aine_lib.metrics.divergence import jensen_shannon

Decode = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ORDERS = ("random", "attention", "gradient", "attention_x_gradient")

__all__ = ["ORDERS", "attention_gradient", "erase_and_renormalise", "fraction_until_flip", "ranking_orders",
           "single_erasure"]


def erase_and_renormalise(attention: torch.Tensor, erase: torch.Tensor) -> torch.Tensor:
    """Zero the weights where ``erase`` is True and renormalise each row to sum to 1.

    A row with no weight left (every item with weight erased, or the rest
    underflowed to exactly 0) becomes all zeros: the decoder then sees a zero
    context, as in S&S's code (``normalize(p=1)`` of a zero row).
    """
    if erase.shape != attention.shape:
        raise ValueError(f"erase {tuple(erase.shape)} must have the attention's shape {tuple(attention.shape)}")
    kept = attention.masked_fill(erase.bool(), 0.0)
    total = kept.sum(-1, keepdim=True)
    return torch.where(total > 0, kept / total.clamp_min(torch.finfo(kept.dtype).tiny), torch.zeros_like(kept))


def _decision(decode: Decode, hidden: torch.Tensor, attention: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    probs = output_distribution(decode(hidden, attention))
    return probs, probs.argmax(-1)


@torch.no_grad()
def single_erasure(decode: Decode, hidden: torch.Tensor, attention: torch.Tensor, mask: torch.Tensor,
                   generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Erase the top item ``i*`` and, separately, a uniformly drawn other real item ``r``.

    Returns ``[B]`` tensors: ``n`` (real items), ``weight_top`` and
    ``weight_random`` (their attention), ``jsd_top`` / ``jsd_random`` (JSD
    between the output distributions before and after, nats), ``flip_top`` /
    ``flip_random`` (the decision changed). Rows with one real item have no
    ``r``: their ``*_random`` entries are NaN / False and ``n == 1`` marks them.
    """
    mask = _check_attention(attention, mask)
    hidden = _check_hidden(hidden, attention)
    B, T = attention.shape
    n = mask.sum(-1)
    top = attention.argmax(-1)
    # r: uniform over the real items other than top (S&S draw among the non-top items).
    keys = torch.rand((B, T), generator=generator, device=generator.device).to(attention.device)
    keys = keys.masked_fill(~mask, -1.0)
    keys[torch.arange(B), top] = -1.0
    rand = keys.argmax(-1)
    has_random = n > 1

    probs, decision = _decision(decode, hidden, attention)
    rows = torch.arange(B, device=attention.device)
    out = {"n": n, "weight_top": attention[rows, top], "weight_random": attention[rows, rand]}
    for name, index, valid in (("top", top, n > 1), ("random", rand, has_random)):
        erase = torch.zeros_like(mask)
        erase[rows, index] = True
        erase &= valid.unsqueeze(-1)            # rows with one item: nothing erased (their entries are masked below)
        new_probs, new_decision = _decision(decode, hidden, erase_and_renormalise(attention, erase))
        jsd = jensen_shannon(new_probs, probs)
        out[f"jsd_{name}"] = torch.where(valid, jsd, torch.full_like(jsd, float("nan")))
        out[f"flip_{name}"] = (new_decision != decision) & valid
    out["weight_random"] = torch.where(has_random, out["weight_random"],
                                       torch.full_like(out["weight_random"], float("nan")))
    return out


def attention_gradient(decode: Decode, hidden: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """``[B, T]``: gradient of the predicted class's probability w.r.t. each attention weight.

    The decision is the argmax at the given attention; its probability is
    differentiated (S&S use the output of the predicted class).
    """
    hidden = hidden.detach()
    att = attention.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        probs = output_distribution(decode(hidden, att))
        chosen = probs.gather(-1, probs.argmax(-1, keepdim=True)).sum()
        (grad,) = torch.autograd.grad(chosen, att)
    return grad


def ranking_orders(decode: Decode, hidden: torch.Tensor, attention: torch.Tensor, mask: torch.Tensor,
                   generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``{order name: [B, T] long}``: positions in erasure order, real items first, then padding.

    ``attention``, ``gradient`` and ``attention_x_gradient`` sort their scores in
    descending order (ties keep position order); ``random`` is a uniform
    permutation of the real items.
    """
    mask = _check_attention(attention, mask)
    grad = attention_gradient(decode, hidden, attention)
    B, T = attention.shape
    random_keys = -torch.rand((B, T), generator=generator, device=generator.device).to(attention.device)
    scores = {"random": -random_keys, "attention": attention, "gradient": grad, "attention_x_gradient": attention * grad}
    orders = {}
    for name in ORDERS:
        s = scores[name].masked_fill(~mask, float("-inf"))
        orders[name] = torch.sort(s, dim=-1, descending=True, stable=True).indices
    return orders


@torch.no_grad()
def fraction_until_flip(decode: Decode, hidden: torch.Tensor, attention: torch.Tensor, mask: torch.Tensor,
                        order: torch.Tensor, max_elements: int = 2 ** 25) -> dict[str, torch.Tensor]:
    """Erase items in ``order`` (``[B, T]``, real positions first) until the decision flips.

    For each row with ``n`` real items, the outputs after erasing the first
    ``k = 1 .. n`` items are all computed; ``k = n`` leaves a zero context (S&S
    erase all items too, and count a flip there as fraction 1). Returns ``[B]``
    tensors ``n``, ``removed`` (the smallest ``k`` that flips the decision, or
    ``n + 1`` when none does), ``flipped`` and ``fraction = removed / n`` (NaN
    when the decision never flips). ``max_elements`` bounds each ``decode``
    call at that many hidden values (rows x T x H).
    """
    mask = _check_attention(attention, mask)
    hidden = _check_hidden(hidden, attention)
    B, T = attention.shape
    if order.shape != (B, T):
        raise ValueError(f"order must be [B, T] = {(B, T)}, got {tuple(order.shape)}")
    n = mask.sum(-1)
    _, decision = _decision(decode, hidden, attention)
    # rank[b, t]: when item t is erased (0 = first); padding never is.
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(T, device=order.device).expand(B, T).contiguous())
    if bool((mask & (rank >= n.unsqueeze(-1))).any()):
        raise ValueError("order must list each row's real positions first (sort padding last)")
    # All (row, k) pairs with 1 <= k <= n, evaluated in chunks.
    counts = n
    pair_row = torch.repeat_interleave(torch.arange(B, device=attention.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    pair_k = torch.arange(len(pair_row), device=attention.device) - starts[pair_row] + 1
    flips = torch.zeros(len(pair_row), dtype=torch.bool, device=attention.device)
    H = hidden.shape[-1]
    step = max(1, max_elements // (T * H))
    for start in range(0, len(pair_row), step):
        rows, ks = pair_row[start:start + step], pair_k[start:start + step]
        erase = (rank[rows] < ks.unsqueeze(-1)) & mask[rows]
        att = erase_and_renormalise(attention[rows], erase)
        _, new_decision = _decision(decode, hidden[rows], att)
        flips[start:start + step] = new_decision != decision[rows]
    # First flipping k per row: min over flipping pairs, n + 1 when none.
    big = n.max() + 1 if B else torch.tensor(1)
    candidate = torch.where(flips, pair_k, torch.full_like(pair_k, int(big)))
    first = torch.full((B,), int(big), dtype=pair_k.dtype, device=attention.device)
    first = first.scatter_reduce(0, pair_row, candidate, reduce="amin")
    flipped = first < big
    removed = torch.where(flipped, first, n + 1)
    fraction = torch.where(flipped, removed.to(attention.dtype) / n.to(attention.dtype),
                           torch.full_like(attention[:, 0], float("nan")))
    return {"n": n, "removed": removed, "flipped": flipped, "fraction": fraction}
