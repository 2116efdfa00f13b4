"""Interventions on attention with the encoder held fixed (Jain & Wallace 2019, sections 4.2-4.3).

Every function takes a ``decode`` callable, ``(hidden [N, T, H], attention
[N, T]) -> logits [N, C]``: the part of a model after the attention weights.
Hidden states are treated as detached constants, as in J&W, who hold the
encoder fixed. Logits with ``C == 1`` are read as one sigmoid logit of a
binary classifier (J&W's models); otherwise a softmax is taken. Put the model
in eval mode first: dropout inside ``decode`` would make outputs random.

* :func:`permute_attention` -- shuffle each row's weights among its real tokens.
* :func:`permutation_output_change` -- J&W's permutation experiment: median
  output change (TVD) over random permutations, all evaluated batched.
* :class:`AdversarialAttention` -- J&W's adversarial search, batched over
  instances: K attention distributions per instance, as far (JSD) from the
  original as possible while the output moves by at most ``epsilon`` (TVD).
  :func:`adversarial_attention_per_instance` runs the same algorithm one
  instance at a time (the baseline of ``benchmarks/adversary.py``).

All randomness comes from an explicit ``torch.Generator``; nothing here
touches the global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from aine_lib.metrics.divergence import jensen_shannon, total_variation

Decode = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = [
    "AdversarialAttention",
    "AdversarialResult",
    "adversarial_attention_per_instance",
    "output_distribution",
    "permutation_output_change",
    "permute_attention",
]


# ----- shared checks ----------------------------------------------------------

def output_distribution(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``[N, C]`` from logits: softmax, or ``[1 - σ, σ]`` for one binary logit."""
    if logits.ndim != 2:
        raise ValueError(f"decode must return logits of shape [N, C], got {tuple(logits.shape)}")
    if logits.shape[-1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=-1)
    return torch.softmax(logits, dim=-1)


def _check_attention(attention: torch.Tensor, mask: torch.Tensor, atol: float = 1e-4) -> torch.Tensor:
    """Validate ``attention [B, T]`` against ``mask [B, T]``; return the mask as bool."""
    if attention.ndim != 2 or mask.shape != attention.shape:
        raise ValueError(f"attention and mask must both be [B, T], got {tuple(attention.shape)} "
                         f"and {tuple(mask.shape)}")
    mask = mask.bool().to(attention.device)
    if not bool(mask.any(-1).all()):
        raise ValueError("every row needs at least one real token (mask True); drop empty rows first")
    if bool((attention.masked_select(~mask) != 0).any()):
        raise ValueError("attention must be exactly 0 at padding (mask False); "
                         "mask the attention scores with -inf before the softmax")
    sums = attention.sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol):
        raise ValueError(f"attention rows must sum to 1, got sums in [{sums.min():.4g}, {sums.max():.4g}]")
    return mask


def _check_hidden(hidden: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    if hidden.ndim != 3 or hidden.shape[:2] != attention.shape:
        raise ValueError(f"hidden must be [B, T, H] matching attention [B, T], got {tuple(hidden.shape)} "
                         f"and {tuple(attention.shape)}")
    return hidden.detach()


# ----- permutation ------------------------------------------------------------

def permute_attention(attention: torch.Tensor, mask: torch.Tensor, n_permutations: int,
                      generator: torch.Generator) -> torch.Tensor:
    """``[P, B, T]``: ``n_permutations`` random rearrangements of each row's weights among its real tokens.

    Padding (mask False) stays exactly 0, so every row still sums to 1.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    mask = _check_attention(attention, mask)
    B, T = attention.shape
    # Random keys on real tokens, +inf on padding: argsort puts the real positions first, in random order.
    keys = torch.rand((n_permutations, B, T), generator=generator, device=generator.device).to(attention.device)
    keys = keys.masked_fill(~mask, float("inf"))
    source = keys.argsort(dim=-1)                                        # [P, B, T]
    # Real positions in ascending order, then padding: the targets the shuffled weights go to.
    pos = torch.arange(T, device=attention.device).expand(B, T)
    target = torch.where(mask, pos, pos + T).argsort(dim=-1).expand(n_permutations, B, T)
    values = attention.expand(n_permutations, B, T).gather(-1, source)   # first n_b: a shuffle of the real weights
    return torch.zeros_like(values).scatter(-1, target, values)


@torch.no_grad()
def permutation_output_change(decode: Decode, hidden: torch.Tensor, attention: torch.Tensor,
                              mask: torch.Tensor, n_permutations: int, generator: torch.Generator,
                              batch_chunk: int = 16) -> torch.Tensor:
    """``[B]``: median over permutations of TVD(output with permuted attention, original output).

    For two classes TVD is J&W's ``|Δŷ|``. The permutations of ``batch_chunk``
    instances go through ``decode`` in one call of ``n_permutations *
    batch_chunk`` rows, which bounds memory at that many ``[T, H]`` copies.
    The median is NumPy's (the mean of the two middle values for even counts).
    """
    if batch_chunk < 1:
        raise ValueError(f"batch_chunk must be >= 1, got {batch_chunk}")
    hidden = _check_hidden(hidden, attention)
    permuted = permute_attention(attention, mask, n_permutations, generator)  # [P, B, T]
    P, B, T = permuted.shape
    changes = []
    for start in range(0, B, batch_chunk):
        stop = min(start + batch_chunk, B)
        b = stop - start
        h = hidden[start:stop]
        original = output_distribution(decode(h, attention[start:stop]))                 # [b, C]
        h_rep = h.unsqueeze(0).expand(P, b, T, h.shape[-1]).reshape(P * b, T, h.shape[-1])
        out = output_distribution(decode(h_rep, permuted[:, start:stop].reshape(P * b, T)))
        tvd = total_variation(out.reshape(P, b, -1), original.unsqueeze(0))            # [P, b]
        changes.append(tvd.quantile(0.5, dim=0))
    return torch.cat(changes)


# ----- adversarial attention ----------------------------------------------------

@dataclass(frozen=True)
class AdversarialResult:
    """Per instance: the feasible adversarial attention with the largest JSD to the original.

    ``found[b]`` is False when no candidate kept the output within epsilon;
    then ``attention[b]`` is the original attention and ``jsd[b] = tvd[b] = 0``.
    ``tvd`` is the output change of the returned attention, recomputed after
    the search, so ``tvd <= epsilon`` holds exactly for every row.
    """

    jsd: torch.Tensor        # [B] JSD(adversarial, original attention), in [0, ln 2]
    attention: torch.Tensor  # [B, T] the adversarial attention (0 at padding)
    tvd: torch.Tensor        # [B] TVD(output with it, original output) <= epsilon
    found: torch.Tensor      # [B] bool

    @staticmethod
    def concatenate(results: list["AdversarialResult"]) -> "AdversarialResult":
        return AdversarialResult(*(torch.cat([getattr(r, f) for r in results])
                                   for f in ("jsd", "attention", "tvd", "found")))


class AdversarialAttention:
    """Jain & Wallace's adversarial attention search, run on a whole batch at once.

    >>> adversary = AdversarialAttention(decode, n_candidates=4, epsilon=0.01)
    >>> result = adversary.search(hidden, attention, mask, generator)

    For each instance, ``n_candidates`` candidates are parametrised as masked
    logits (initialised at ``init_scale * N(0, 1)``, J&W's log-uniform plus
    noise) and optimised with Adam (amsgrad, as J&W) for ``steps`` steps on::

        loss = sum_k [-JSD(c_k, a) + penalty * relu(TVD(y(c_k), y(a)) - epsilon)]
               - diversity * mean_{k,l} JSD(c_k, c_l)

    summed over instances. Each instance's loss depends only on its own
    candidates and Adam is elementwise, so batching changes no instance's
    optimisation. The penalty lets iterates wander just past epsilon, so
    feasibility (``TVD <= epsilon``) is checked at every step, the best
    feasible candidate seen is kept, and it is verified again after the
    search with a fresh forward pass.
    """

    def __init__(self, decode: Decode, *, n_candidates: int = 4, epsilon: float = 0.01, steps: int = 500,
                 lr: float = 0.01, penalty: float = 500.0, diversity: float = 1.0, init_scale: float = 3.0):
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if not lr > 0 or penalty < 0 or diversity < 0 or init_scale < 0:
            raise ValueError(f"need lr > 0 and penalty, diversity, init_scale >= 0; got lr={lr}, "
                             f"penalty={penalty}, diversity={diversity}, init_scale={init_scale}")
        self.decode = decode
        self.n_candidates = n_candidates
        self.epsilon = float(epsilon)
        self.steps = steps
        self.lr = lr
        self.penalty = penalty
        self.diversity = diversity
        self.init_scale = init_scale

    def _outputs(self, hidden: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Output distributions ``[B, K, C]`` for candidate attention ``[B, K, T]``."""
        B, K, T = candidates.shape
        h = hidden.unsqueeze(1).expand(B, K, T, hidden.shape[-1]).reshape(B * K, T, hidden.shape[-1])
        return output_distribution(self.decode(h, candidates.reshape(B * K, T))).reshape(B, K, -1)

    def search(self, hidden: torch.Tensor, attention: torch.Tensor, mask: torch.Tensor,
               generator: torch.Generator) -> AdversarialResult:
        """Search all instances of the batch at once; see the class docstring."""
        mask = _check_attention(attention, mask)
        hidden = _check_hidden(hidden, attention)
        attention = attention.detach()
        B, T = attention.shape
        K = self.n_candidates
        with torch.no_grad():
            original_out = output_distribution(self.decode(hidden, attention))        # [B, C]

        noise = torch.randn((B, K, T), generator=generator, device=generator.device, dtype=attention.dtype)
        logits = (self.init_scale * noise).to(attention.device).requires_grad_(True)
        optimiser = torch.optim.Adam([logits], lr=self.lr, amsgrad=True)
        mask_k = mask.unsqueeze(1)                                                   # [B, 1, T]
        target = attention.unsqueeze(1)                                              # [B, 1, T]

        best_jsd = torch.full((B,), -1.0, dtype=attention.dtype, device=attention.device)
        best_attention = attention.clone()
        rows = torch.arange(B, device=attention.device)
        for step in range(self.steps + 1):
            candidates = torch.softmax(logits.masked_fill(~mask_k, float("-inf")), dim=-1)   # [B, K, T]
            tvd = total_variation(self._outputs(hidden, candidates), original_out.unsqueeze(1))  # [B, K]
            jsd = jensen_shannon(candidates, target)                                           # [B, K]
            with torch.no_grad():
                score = torch.where(tvd <= self.epsilon, jsd, torch.full_like(jsd, -1.0))
                step_best, k = score.max(dim=-1)
                better = step_best > best_jsd
                best_jsd = torch.where(better, step_best, best_jsd)
                best_attention = torch.where(better.unsqueeze(-1), candidates[rows, k], best_attention)
            if step == self.steps:
                break
            loss = (-jsd + self.penalty * torch.relu(tvd - self.epsilon)).sum()
            if self.diversity > 0 and K > 1:
                cross = jensen_shannon(candidates.unsqueeze(1), candidates.unsqueeze(2))        # [B, K, K]
                loss = loss - self.diversity * cross.mean(dim=(1, 2)).sum()
            # autograd.grad, not backward: the decoder's own parameters get no .grad.
            (logits.grad,) = torch.autograd.grad(loss, [logits])
            optimiser.step()

        with torch.no_grad():
            found = best_jsd >= 0
            best_attention = torch.where(found.unsqueeze(-1), best_attention, attention)
            tvd = total_variation(output_distribution(self.decode(hidden, best_attention)), original_out)
            # A fresh forward pass may round differently from the one inside the loop.
            found = found & (tvd <= self.epsilon)
            best_attention = torch.where(found.unsqueeze(-1), best_attention, attention)
            tvd = torch.where(found, tvd, torch.zeros_like(tvd))
            jsd = torch.where(found, jensen_shannon(best_attention, attention), torch.zeros_like(tvd))
        return AdversarialResult(jsd=jsd, attention=best_attention, tvd=tvd, found=found)

    def search_per_instance(self, hidden: torch.Tensor, attention: torch.Tensor, mask: torch.Tensor,
                            generator: torch.Generator) -> AdversarialResult:
        """The same search run on one instance at a time (J&W's loop); results are concatenated."""
        return AdversarialResult.concatenate([
            self.search(hidden[i:i + 1], attention[i:i + 1], mask[i:i + 1], generator)
            for i in range(attention.shape[0])
        ])


def adversarial_attention_per_instance(decode: Decode, hidden: torch.Tensor, attention: torch.Tensor,
                                       mask: torch.Tensor, generator: torch.Generator,
                                       **options) -> AdversarialResult:
    """``AdversarialAttention(decode, **options)`` run one instance at a time: the unbatched baseline."""
    return AdversarialAttention(decode, **options).search_per_instance(hidden, attention, mask, generator)
