"""Model-agnostic explanation methods, all from Captum, for any model of the study.

Every model here (the RNN/CNN/Average :class:`~aine_lib.models.rnn_attention.AttentionClassifier`
and the :class:`~aine_lib.models.transformer_encoder.TransformerClassifier`) has
``embed(ids)`` and ``forward(ids, mask, embeddings=...)``, so one function,
the target class's **probability** as a function of the word embeddings, is
explained by every method:

* ``gradient_x_input`` -- Captum ``InputXGradient`` (signed, summed over
  embedding dimensions);
* ``integrated_gradients`` -- Captum ``IntegratedGradients`` from the
  *reference input* (every real, non-special token replaced by padding; [CLS]
  and [SEP] kept), Gauss-Legendre, ``n_steps`` steps, the ``B x n_steps``
  interpolated inputs sent through the model ``internal_batch_size`` (64) at a
  time: on one CPU thread that is 20-25 % faster than one pass over all of
  them (16 examples x 32 steps, 28 and 128 wordpieces; ``benchmarks/attribution.py``),
  and it bounds the memory of the backward pass on long documents;
* ``deeplift`` -- Captum ``DeepLift`` (rescale rule) from the same reference;
  Captum applies its rules to *module* nonlinearities only; in our models
  that is the output Softmax (and the RNNs' ReLU/Tanh modules where used).
  GELU, the functional softmax inside attention and the pooler's
  ``torch.tanh`` get plain gradients, so on Transformers "DeepLIFT" is close
  to gradient x (input - reference), a known limitation;
* ``occlusion`` -- Captum ``FeatureAblation``, one token at a time replaced by
  the reference token: the drop in the target probability (leave-one-out by
  replacement, batched);
* ``lime`` and ``kernel_shap`` -- Captum ``Lime`` / ``KernelShap`` with one
  interpretable feature per token and the reference token as "absent"
  (``n_samples`` perturbations per example);
* ``random`` -- uniform random scores: the floor every faithfulness metric
  is read against.

Scores are ``[B, T]``, exactly 0 at padding; positions of special tokens are
never perturbed (their score is 0 for the perturbation methods).
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from aine_lib.attribution.base import AttributionMethod


def special_mask(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """True where ``ids`` holds a special token of ``model`` ([CLS], [SEP]); none for the RNN models."""
    special = getattr(getattr(model, "cfg", None), "special_ids", ())
    out = torch.zeros_like(ids, dtype=torch.bool)
    for i in special:
        out |= ids == i
    return out


def reference_ids(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The "absent" input: real, non-special tokens replaced by the padding id (special tokens kept)."""
    pad = getattr(getattr(model, "cfg", None), "pad_id", 0)
    replace = mask & ~special_mask(model, ids)
    return ids.masked_fill(replace, pad)


class _Probability(nn.Module):
    """``(embeddings, ids, mask) -> softmax probabilities``: the function every method explains."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.softmax = nn.Softmax(dim=-1)   # a module, so DeepLift applies its rule to it

    def forward(self, embeddings: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.softmax(self.model(ids, mask, embeddings=embeddings).logits)


class _CaptumMethod(AttributionMethod):
    signed = True

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.forward_fn = _Probability(model)

    def _inputs(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            emb = self.model.embed(batch.ids)
            ref = self.model.embed(reference_ids(self.model, batch.ids, batch.mask))
        return emb, ref

    def _token_mask(self, batch) -> torch.Tensor:
        return batch.mask & ~special_mask(self.model, batch.ids)


class GradientXInput(_CaptumMethod):
    name = "gradient_x_input"

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import InputXGradient

        emb, _ = self._inputs(batch)
        attr = InputXGradient(self.forward_fn).attribute(emb.requires_grad_(True), target=target,
                                                         additional_forward_args=(batch.ids, batch.mask))
        return self._masked(attr.sum(-1).detach(), batch.mask)


class IntegratedGradientsMethod(_CaptumMethod):
    name = "integrated_gradients"

    def __init__(self, model: nn.Module, n_steps: int = 32, internal_batch_size: int | None = 64):
        super().__init__(model)
        self.n_steps = n_steps
        self.internal_batch_size = internal_batch_size
        self.last_delta: torch.Tensor | None = None   # completeness error of the last call, per example

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import IntegratedGradients

        emb, ref = self._inputs(batch)
        attr, delta = IntegratedGradients(self.forward_fn).attribute(
            emb, baselines=ref, target=target, additional_forward_args=(batch.ids, batch.mask),
            n_steps=self.n_steps, internal_batch_size=self.internal_batch_size, return_convergence_delta=True)
        self.last_delta = delta.detach()
        return self._masked(attr.sum(-1).detach(), batch.mask)


class DeepLiftMethod(_CaptumMethod):
    name = "deeplift"

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        import warnings

        from captum.attr import DeepLift

        emb, ref = self._inputs(batch)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]etting forward, backward hooks.*")
            attr = DeepLift(self.forward_fn).attribute(emb.requires_grad_(True), baselines=ref, target=target,
                                                       additional_forward_args=(batch.ids, batch.mask))
        return self._masked(attr.sum(-1).detach(), batch.mask)


def _feature_mask(batch) -> torch.Tensor:
    """``[B, T, 1]``: token position t is feature t (broadcast over embedding dimensions)."""
    B, T = batch.ids.shape
    return torch.arange(T, device=batch.ids.device).expand(B, T).unsqueeze(-1)


class Occlusion(_CaptumMethod):
    name = "occlusion"

    def __init__(self, model: nn.Module, perturbations_per_eval: int = 16):
        super().__init__(model)
        self.perturbations_per_eval = perturbations_per_eval

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import FeatureAblation

        emb, ref = self._inputs(batch)
        with torch.no_grad():
            attr = FeatureAblation(self.forward_fn).attribute(
                emb, baselines=ref, target=target, additional_forward_args=(batch.ids, batch.mask),
                feature_mask=_feature_mask(batch), perturbations_per_eval=self.perturbations_per_eval)
        # every embedding dimension of a token carries the same score: read one
        return self._masked(attr[..., 0].detach(), self._token_mask(batch))


class _SampledSurrogate(_CaptumMethod):
    """LIME / KernelSHAP: one example at a time (Captum needs one feature mask per call)."""

    captum_class = ""

    def __init__(self, model: nn.Module, n_samples: int = 200, perturbations_per_eval: int = 50, seed: int = 0):
        super().__init__(model)
        self.n_samples = n_samples
        self.perturbations_per_eval = perturbations_per_eval
        self.seed = seed

    def _explainer(self):
        raise NotImplementedError

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        emb, ref = self._inputs(batch)
        tokens = self._token_mask(batch)
        out = torch.zeros(batch.ids.shape, dtype=emb.dtype, device=emb.device)
        explainer = self._explainer()
        for b in range(len(batch.ids)):
            n = int(batch.mask[b].sum())
            # One feature per real position. A special token's reference equals the token, so switching it
            # "off" changes nothing and its weight is ~0; it is zeroed below anyway.
            fmask = torch.arange(n, device=emb.device).unsqueeze(0).unsqueeze(-1)
            # Seed Captum's sampling from the example's ids: the same input always gets the same scores.
            digest = hashlib.sha256(batch.ids[b, :n].cpu().numpy().tobytes()).hexdigest()
            torch.manual_seed(self.seed + int(digest[:8], 16))
            with torch.no_grad():
                attr = explainer.attribute(
                    emb[b:b + 1, :n], baselines=ref[b:b + 1, :n], target=target[b:b + 1],
                    additional_forward_args=(batch.ids[b:b + 1, :n], batch.mask[b:b + 1, :n]),
                    feature_mask=fmask, n_samples=self.n_samples,
                    perturbations_per_eval=self.perturbations_per_eval)
            out[b, :n] = attr[0, :, 0]
        return self._masked(out.detach(), tokens)


class LimeMethod(_SampledSurrogate):
    name = "lime"

    def _explainer(self):
        from captum._utils.models.linear_model import SkLearnRidge
        from captum.attr import Lime

        # Ridge(alpha=1), the surrogate of the original LIME package; Captum's default Lasso zeroes small effects.
        return Lime(self.forward_fn, interpretable_model=SkLearnRidge(alpha=1.0))


class KernelShapMethod(_SampledSurrogate):
    name = "kernel_shap"

    def _explainer(self):
        from captum.attr import KernelShap

        return KernelShap(self.forward_fn)


class RandomScores(AttributionMethod):
    """Uniform random scores, seeded by each example's token ids: the floor of every comparison."""

    name = "random"

    def __init__(self, model: nn.Module, seed: int = 0):
        super().__init__(model)
        self.seed = seed

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(batch.ids.shape, dtype=torch.float32, device=batch.ids.device)
        for b in range(len(batch.ids)):
            n = int(batch.mask[b].sum())
            digest = hashlib.sha256(batch.ids[b, :n].cpu().numpy().tobytes()).hexdigest()
            gen = torch.Generator().manual_seed(self.seed + int(digest[:8], 16))
            out[b, :n] = torch.rand(n, generator=gen).to(out.device)
        return self._masked(out, batch.mask & ~special_mask(self.model, batch.ids))
