"""Gradient methods: one definition each, for classifiers and encoder-decoders.

The function explained is a classifier's target-class **probability**, or an encoder-decoder's
``log p(y_t | x, y_<t)`` at every target step, as a function of the input word embeddings
(source and target prefix for encoder-decoders):

* ``gradient`` (Jain & Wallace 2019) -- ``|∂ŷ/∂e_t · e_t|`` summed over dimensions with the
  attention detached (a single-distribution model's attention is treated as a constant);
* ``gradient_x_input`` -- Captum ``InputXGradient`` (signed, summed over embedding dimensions);
* ``integrated_gradients`` -- classifiers: Captum ``IntegratedGradients`` from the reference input
  (real, non-special tokens replaced by padding), Gauss-Legendre, ``n_steps`` steps, sent through
  the model ``internal_batch_size`` interpolations at a time; with ``length_buckets`` (default) the
  examples are sorted by length and each model call is cut to its longest example, so no work is spent
  on a batch's padding; ``last_delta`` is Captum's completeness error.
  Encoder-decoders: from all-zero source and target embeddings (both scaled together), ``n_steps``
  midpoint Riemann steps, every step's ``log p(y_t)`` differentiated from the same forward pass
  (Captum would run one pass per target step); source + prefix scores of step ``t`` sum to
  ``log p(y_t | x) - log p(y_t | zero embeddings)`` up to the Riemann error -- except where the model's
  first operation is scale-invariant (T5: no position embeddings, RMSNorm), which makes the zero baseline
  a discontinuity that no step count resolves (``log p`` at ``1e-6 x`` the embeddings is already near its
  full value): there the scores are not complete;
* ``deeplift`` -- Captum ``DeepLift`` (rescale rule) from the reference. Captum applies its rules to
  *module* nonlinearities only (the output Softmax, the RNNs' ReLU/Tanh modules); GELU, the
  functional softmax inside attention and tanh get plain gradients, so on Transformers it is close
  to gradient x (input - reference), a known limitation;
* ``grad_attention`` -- ``mean_h (∂y/∂A ⊙ A)^+`` in the last layer, readout row;
* ``chefer`` (Chefer, Gur & Wolf 2021) -- ``R = I``; for each layer ``R += Ā_l R`` with
  ``Ā_l = mean_h (∂y/∂A_l ⊙ A_l)^+``; score ``R[readout, j]``; ``y`` is the target logit.
"""

from __future__ import annotations

import warnings

import torch
from captum.attr import DeepLift, InputXGradient, IntegratedGradients
from torch import nn

from aine_lib.attribution.base import TOKENS_PER_CALL, AttributionMethod, readout_rows, rows_per_call
from aine_lib.models.protocol import TokenBatch


class ClassProbability(nn.Module):
    """``(embeddings, ids, mask, *extra) -> softmax probabilities``: the function classifier methods explain."""

    def __init__(self, adapter, extra_keys: tuple[str, ...] = (), detach_attention: bool = False):
        super().__init__()
        self.model = adapter.model                 # a child module, so DeepLift finds its nonlinearities
        self.softmax = nn.Softmax(dim=-1)          # a module, so DeepLift applies its rule to it
        object.__setattr__(self, "adapter", adapter)
        self.extra_keys, self.detach_attention = extra_keys, detach_attention

    def forward(self, embeddings: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, *extra) -> torch.Tensor:
        batch = TokenBatch(ids, mask, dict(zip(self.extra_keys, extra)))
        return self.softmax(self.adapter.logits(batch, embeddings, detach_attention=self.detach_attention))


def forward_args(batch) -> tuple:
    """Captum's ``additional_forward_args`` for a classifier batch (expanded along with the inputs)."""
    return (batch.ids, batch.mask, *getattr(batch, "extra", {}).values())


class _EmbeddingMethod(AttributionMethod):
    signed = True
    detach_attention = False

    def _function(self, batch) -> ClassProbability:
        return ClassProbability(self.adapter, tuple(getattr(batch, "extra", {})), self.detach_attention)

    def _inputs(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            emb = self.adapter.embed(batch)
            ref = self.adapter.embed(TokenBatch(self.adapter.reference_ids(batch.ids, batch.mask), batch.mask,
                                                getattr(batch, "extra", {})))
        return emb, ref


class GradientImportance(_EmbeddingMethod):
    name = "gradient"
    signed = False
    detach_attention = True

    def __init__(self, adapter):
        super().__init__(adapter)
        if adapter.n_layers is not None:
            raise adapter._not("gradients with the attention detached", "that is Jain & Wallace's definition for "
                               "a single attention distribution; use gradient_x_input for Transformers")

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            emb = self.adapter.embed(batch)
        attr = InputXGradient(self._function(batch)).attribute(emb.requires_grad_(True), target=target,
                                                                additional_forward_args=forward_args(batch))
        return self._masked(attr.sum(-1).abs().detach(), batch.mask)


def _seq2seq_step_gradients(adapter, batch, src_emb, tgt_emb, alphas) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_alpha (∂ log p(y_t) / ∂e)(alpha e) · e / len(alphas) per step: ``([B, T, S], [B, T, T])``."""
    T = batch.tgt_in.shape[1]
    src_total = torch.zeros(src_emb.shape[0], T, src_emb.shape[1], device=src_emb.device)
    tgt_total = torch.zeros(src_emb.shape[0], T, T, device=src_emb.device)
    with torch.enable_grad():
        for alpha in alphas:
            s = (alpha * src_emb).requires_grad_(True)
            g = (alpha * tgt_emb).requires_grad_(True)
            logp = adapter.target_log_probs(batch, s, g)
            for t in range(T):
                gs, gt = torch.autograd.grad(logp[:, t].sum(), (s, g), retain_graph=t < T - 1)
                src_total[:, t] += (gs * src_emb).sum(-1) / len(alphas)
                tgt_total[:, t] += (gt * tgt_emb).sum(-1) / len(alphas)
    return src_total * adapter.step_mask(batch), tgt_total * adapter.prefix_mask(batch)


class GradientXInput(_EmbeddingMethod):
    name = "gradient_x_input"
    families = ("classifier", "seq2seq")

    def attribute(self, batch, target=None) -> torch.Tensor:
        if self.is_seq2seq:       # one point of the IG path: alpha = 1, the gradient at the input itself
            src_emb, tgt_emb = (e.detach() for e in self.adapter.embed(batch))
            ones = torch.ones(1, dtype=src_emb.dtype, device=src_emb.device)
            src, self.last_target_scores = _seq2seq_step_gradients(self.adapter, batch, src_emb, tgt_emb, ones)
            return src
        emb, _ = self._inputs(batch)
        attr = InputXGradient(self._function(batch)).attribute(emb.requires_grad_(True), target=target,
                                                                additional_forward_args=forward_args(batch))
        return self._masked(attr.sum(-1).detach(), batch.mask)


class IntegratedGradientsMethod(_EmbeddingMethod):
    name = "integrated_gradients"
    families = ("classifier", "seq2seq")

    def __init__(self, adapter, n_steps: int | None = None, internal_batch_size: int | None = 64,
                 length_buckets: bool = True, tokens_per_call: int = TOKENS_PER_CALL):
        super().__init__(adapter)
        self.tokens_per_call = tokens_per_call          # speed only: not in options()
        self.n_steps = n_steps if n_steps is not None else (16 if self.is_seq2seq else 32)
        if self.n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {self.n_steps}")
        self.internal_batch_size = internal_batch_size
        self.length_buckets = length_buckets

    def options(self) -> dict:
        baseline = "zero embeddings" if self.is_seq2seq else "reference ids (padding)"
        return {"n_steps": self.n_steps, "internal_batch_size": self.internal_batch_size, "baseline": baseline}

    def attribute(self, batch, target=None) -> torch.Tensor:
        if self.is_seq2seq:
            src_emb, tgt_emb = (e.detach() for e in self.adapter.embed(batch))
            alphas = (torch.arange(self.n_steps, dtype=src_emb.dtype, device=src_emb.device) + 0.5) / self.n_steps
            src, tgt = _seq2seq_step_gradients(self.adapter, batch, src_emb, tgt_emb, alphas)
            self.last_target_scores = tgt
            with torch.no_grad():      # completeness error per step: scores vs log p(x) - log p(zero embeddings)
                gap = (self.adapter.target_log_probs(batch, src_emb, tgt_emb)
                       - self.adapter.target_log_probs(batch, torch.zeros_like(src_emb), torch.zeros_like(tgt_emb)))
            self.last_delta = (src.sum(-1) + tgt.sum(-1) - gap) * batch.tgt_mask
            return src
        emb, ref = self._inputs(batch)
        if not self.length_buckets or self.adapter.padding_side != "right" or self.internal_batch_size is None:
            attr, delta = IntegratedGradients(self._function(batch)).attribute(
                emb, baselines=ref, target=target, additional_forward_args=forward_args(batch),
                n_steps=self.n_steps, internal_batch_size=self.internal_batch_size, return_convergence_delta=True)
            self.last_delta = delta.detach()
            return self._masked(attr.sum(-1).detach(), batch.mask)
        # Length buckets: examples sorted by length, as many per Captum call as fill internal_batch_size
        # interpolations, each call cut to its longest example (no work on the batch's padding).
        lengths = batch.mask.sum(1)
        scores = torch.zeros(batch.ids.shape, dtype=emb.dtype, device=emb.device)
        deltas = torch.zeros(len(batch), dtype=emb.dtype, device=emb.device)
        extra = getattr(batch, "extra", {})
        for rows in self._buckets(lengths):
            w = int(lengths[rows].max())
            sub = TokenBatch(batch.ids[rows, :w], batch.mask[rows, :w], {k: v[rows, :w] for k, v in extra.items()})
            # one example longer than the budget: its interpolations are split over several calls
            steps_per_call = min(self.n_steps, rows_per_call(w, self.tokens_per_call))
            attr, delta = IntegratedGradients(self._function(sub)).attribute(
                emb[rows, :w], baselines=ref[rows, :w], target=target[rows], additional_forward_args=forward_args(sub),
                n_steps=self.n_steps, internal_batch_size=None if len(rows) > 1 else steps_per_call,
                return_convergence_delta=True)
            scores[rows, :w] = attr.sum(-1).detach()
            deltas[rows] = delta.detach().to(deltas.dtype)
        self.last_delta = deltas
        return self._masked(scores, batch.mask)

    def _buckets(self, lengths: torch.Tensor) -> list[torch.Tensor]:
        """Rows sorted by length, grouped so that a call holds at most ``internal_batch_size``
        interpolations and ``tokens_per_call`` tokens (the backward pass slows sharply beyond it on a CPU:
        on 20News posts of 128 pieces, 64 interpolations per call ran 3.6x slower than 32)."""
        order = torch.argsort(lengths, stable=True).tolist()
        most = max(1, self.internal_batch_size // self.n_steps)
        buckets, current = [], []
        for i in order:
            width = int(lengths[i])           # ascending: the newest row is the widest
            if current and (len(current) + 1 > most or (len(current) + 1) * self.n_steps * width > self.tokens_per_call):
                buckets.append(torch.tensor(current))
                current = []
            current.append(i)
        if current:
            buckets.append(torch.tensor(current))
        return buckets


class DeepLiftMethod(_EmbeddingMethod):
    name = "deeplift"

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        emb, ref = self._inputs(batch)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]etting forward, backward hooks.*")
            attr = DeepLift(self._function(batch)).attribute(emb.requires_grad_(True), baselines=ref, target=target,
                                                             additional_forward_args=forward_args(batch))
        return self._masked(attr.sum(-1).detach(), batch.mask)


class _AttentionGradientMethod(AttributionMethod):
    def __init__(self, adapter):
        super().__init__(adapter)
        if adapter.n_layers is None:
            raise adapter._not(self.name, "it needs attention per layer and head; use 'gradient' for this model")
        if not adapter.attention_has_gradient:
            raise adapter._not(f"{self.name!r} scores", "the attention maps it returns are copies outside its "
                               "computation graph (as XLNet's are), so they have no gradient")

    def _attention_gradients(self, batch, target):
        with torch.enable_grad():
            out = self.adapter.forward(batch)
            logit = out.logits.gather(-1, target.view(-1, 1)).sum()
            grads = torch.autograd.grad(logit, out.attentions, allow_unused=True)
        if any(g is None for g in grads):
            raise self.adapter._not(f"{self.name!r} scores", "the attention maps it returns are copies outside its "
                                    "computation graph (as XLNet's are), so they have no gradient")
        return tuple(a.detach() for a in out.attentions), tuple(g.detach() for g in grads)


class GradAttention(_AttentionGradientMethod):
    name = "grad_attention"

    def attribute(self, batch, target):
        attentions, grads = self._attention_gradients(batch, target)
        weighted = (grads[-1] * attentions[-1]).clamp(min=0).mean(1)            # [B, T, T]
        return self._masked(readout_rows(weighted, self.adapter.readout_positions(batch)), batch.mask)


class Chefer(_AttentionGradientMethod):
    name = "chefer"

    def attribute(self, batch, target):
        attentions, grads = self._attention_gradients(batch, target)
        B, T = batch.ids.shape
        R = torch.eye(T, dtype=attentions[0].dtype, device=batch.ids.device).expand(B, T, T).clone()
        for a, g in zip(attentions, grads):
            cam = (g * a).clamp(min=0).mean(1)
            R = R + cam @ R
        return self._masked(readout_rows(R, self.adapter.readout_positions(batch)), batch.mask)
