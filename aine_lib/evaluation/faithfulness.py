"""Faithfulness curves: run a model on erased inputs to score token-importance scores (ERASER).

The metrics (comprehensiveness, sufficiency, AOPC) and their definitions are in
:mod:`aine_lib.metrics.faithfulness`; this module deletes tokens and runs the model.

The three deletion modes
------------------------
"Deleting" tokens produces inputs the model never saw in training, so part of
any drop in ``p`` may be the out-of-distribution shock of the deletion rather
than the loss of the information (Hooker et al. 2019; Hase et al. 2021). No
single operation removes this confound, so each is computed with three, and
a conclusion should hold under all of them:

* ``"remove"`` -- the tokens are taken out and the row closes up (re-padded on
  the right), as in ERASER. The result is a shorter, possibly ungrammatical
  text; positions shift.
* ``"mask"`` -- the ids are replaced by a neutral token: ``[MASK]`` for a
  Transformer (MiniLM was pre-trained to see it; the from-scratch encoder
  never saw its ``[MASK]`` id, whose embedding is untrained, so for it this
  mode is itself out of distribution), the unknown-word id for the
  word-level RNNs. Length and positions are kept; the model sees *that*
  something was there, not what.
* ``"attention_mask"`` -- the ids are kept but the positions are removed from
  the attention mask, so no query can attend to them (Hase et al.'s
  "attention masking" fix): for a Transformer the erased tokens cannot
  influence [CLS] at all while every other position keeps its position
  embedding. Only meaningful for Transformers: the RNN encoders read every
  position in sequence whatever the mask says, so the mode is refused for
  :class:`~aine_lib.models.rnn_attention.AttentionClassifier`.

Implementation
--------------
:func:`faithfulness_curves` builds every variant of a batch (the full input,
and for each fraction x mode the input without and with only the top-k),
deduplicates identical rows (short texts give the same ``k`` for several
fractions; keeping everything gives back the full input), sorts them by length
and evaluates them in chunks of at most ``max_rows`` rows, trailing padding
trimmed, under ``torch.no_grad()`` with the model in eval mode. A variant with
no real token left (an RNN input whose every token was removed) has no defined
prediction: its probability, and so its metric, is NaN.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from aine_lib.attribution import Explanation, as_adapter
from aine_lib.metrics.faithfulness import FRACTIONS, _check_fraction, top_k_mask
from aine_lib.models.protocol import ClassifierAdapter, TokenBatch, move_padding

MODES = ("remove", "mask", "attention_mask")
#: Unknown-word id of the word-level models (:class:`~aine_lib.data.text.Vocabulary`), their "mask" token.
RNN_UNK_ID = 1

__all__ = ["MODES", "RNN_UNK_ID", "erase", "explanation_faithfulness", "faithfulness_curves"]


# ----- erasure --------------------------------------------------------------------

def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown deletion mode {mode!r}; choose one of {MODES}")


def erase(ids: torch.Tensor, mask: torch.Tensor, drop: torch.Tensor, mode: str, *, mask_id: int | None,
          pad_id: int = 0, special: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Delete the tokens where ``drop`` is True; returns new ``(ids, mask)`` of the same shape ``[B, T]``.

    * ``"remove"``: the kept tokens close up in their order and the row is
      re-padded on the right with ``pad_id`` (the shape stays ``[B, T]``);
    * ``"mask"``: the dropped ids become ``mask_id`` (``[MASK]``, or the unk
      id for the word-level models); the mask is unchanged;
    * ``"attention_mask"``: the ids are kept, the mask is False at the dropped
      positions (Transformers only; see the module docstring).

    Raises ValueError for an unknown mode, a ``drop`` that touches padding or
    (when ``special`` is given) a special token, or ``"mask"`` without a
    ``mask_id``. Special tokens are never dropped, so in ``"remove"`` mode
    they stay, and [CLS] stays at position 0.
    """
    _check_mode(mode)
    if not (ids.shape == mask.shape == drop.shape):
        raise ValueError(f"ids {tuple(ids.shape)}, mask {tuple(mask.shape)} and drop {tuple(drop.shape)} "
                         "must have one shape")
    if mask.dtype != torch.bool or drop.dtype != torch.bool:
        raise ValueError(f"mask and drop must be bool tensors, got {mask.dtype} and {drop.dtype}")
    if bool((drop & ~mask).any()):
        raise ValueError("drop touches padding positions; only real tokens can be erased")
    if special is not None and bool((drop & special.to(torch.bool)).any()):
        raise ValueError("drop touches a special token ([CLS]/[SEP]); special tokens are never erased")
    if mode == "mask":
        if mask_id is None:
            raise ValueError('mode "mask" needs a mask_id ([MASK] for a Transformer, the unk id for an RNN)')
        return ids.masked_fill(drop, int(mask_id)), mask.clone()
    if mode == "attention_mask":
        return ids.clone(), mask & ~drop
    keep = mask & ~drop
    order = torch.sort((~keep).long(), dim=-1, stable=True).indices      # kept positions first, in order
    new_mask = torch.arange(ids.shape[1], device=ids.device)[None] < keep.sum(-1, keepdim=True)
    return ids.gather(1, order).masked_fill(~new_mask, pad_id), new_mask


# ----- the curves ------------------------------------------------------------------

def _is_word_level(adapter: ClassifierAdapter) -> bool:
    """A single-distribution model (BiLSTM/CNN/Average): it reads every position whatever the mask says."""
    return adapter.n_layers is None


def _resolve_modes(adapter: ClassifierAdapter, modes: Sequence[str] | None) -> tuple[str, ...]:
    if modes is None:
        return ("remove", "mask") if _is_word_level(adapter) else MODES
    modes = tuple(modes)
    if not modes:
        raise ValueError("modes is empty")
    for m in modes:
        _check_mode(m)
    if len(set(modes)) != len(modes):
        raise ValueError(f"modes repeat: {modes}")
    if "attention_mask" in modes and _is_word_level(adapter):
        raise ValueError('deletion mode "attention_mask" is only meaningful for Transformers: the RNN/CNN '
                         "encoders read every position whatever the mask says; use \"remove\" or \"mask\"")
    return modes


def _resolve_mask_id(adapter: ClassifierAdapter, mask_id: int | None) -> int | None:
    if mask_id is not None:
        return int(mask_id)
    if adapter.mask_id is not None:
        return int(adapter.mask_id)
    return RNN_UNK_ID if _is_word_level(adapter) else None


def _target_probabilities(adapter: ClassifierAdapter, ids: torch.Tensor, mask: torch.Tensor, target: torch.Tensor,
                          max_rows: int) -> torch.Tensor:
    """``p(target | row)`` for every row (float64, NaN for rows without a real token), few forward passes.

    Identical rows are evaluated once; rows are sorted by their last real
    position and chunked, with the trailing padding of each chunk trimmed.
    """
    N, T = ids.shape
    out = torch.full((N,), math.nan, dtype=torch.float64, device=ids.device)
    nonempty = mask.any(-1)
    if not bool(nonempty.any()):
        return out
    rows = torch.nonzero(nonempty).squeeze(1)
    unique, inverse = torch.unique(torch.cat([ids[rows], mask[rows].long()], dim=1), dim=0, return_inverse=True)
    u_ids, u_mask = unique[:, :T], unique[:, T:].bool()
    length = (u_mask.long() * torch.arange(1, T + 1, device=ids.device)).amax(-1)
    order = torch.argsort(length, stable=True)
    chunks = []
    for start in range(0, len(order), max_rows):
        idx = order[start:start + max_rows]
        width = int(length[idx].max())
        b_ids, b_mask = adapter.pad_like_model(u_ids[idx, :width], u_mask[idx, :width])
        logits = adapter.logits(TokenBatch(b_ids, b_mask))
        chunks.append(torch.softmax(logits.double(), dim=-1))
    probs = torch.empty((unique.shape[0], chunks[0].shape[1]), dtype=torch.float64, device=ids.device)
    probs[order] = torch.cat(chunks)
    out[rows] = probs[inverse].gather(1, target[rows, None]).squeeze(1)
    return out


def faithfulness_curves(model, batch, scores: torch.Tensor, target: torch.Tensor | None = None,
                        fractions: Iterable[float] = FRACTIONS, modes: Sequence[str] | None = None, *,
                        mask_id: int | None = None, special: torch.Tensor | None = None,
                        max_rows: int = 256) -> pd.DataFrame:
    """ERASER comprehensiveness and sufficiency of ``scores [B, T]`` for every example x fraction x mode.

    ``model`` is one of the study's classifiers, a Hugging Face classifier or a classifier adapter.
    ``batch`` has ``ids``, ``mask`` (e.g. :class:`~aine_lib.models.training.Batch`); ``target [B]`` is the
    explained class (None: the model's prediction on the full input). ``modes`` None means all three modes
    for a Transformer and ``("remove", "mask")`` for an
    :class:`~aine_lib.models.rnn_attention.AttentionClassifier` (which refuses ``"attention_mask"``).
    ``mask_id`` None takes the model's [MASK] id, else the unk id (1) for the word-level models.
    ``special`` None takes the adapter's ``special_mask``. Left-padded batches (XLNet) are scored as given.
    ``max_rows`` bounds the rows of one forward pass.

    Returns one row per example x fraction x mode (examples in batch order) with columns
    ``example`` (row of the batch), ``fraction``, ``mode``, ``n_tokens`` (real non-special tokens),
    ``k``, ``p_full``, ``p_without_top_k``, ``p_only_top_k``,
    ``comprehensiveness = p_full - p_without_top_k`` and ``sufficiency = p_full - p_only_top_k``.
    Examples with no real non-special token, and variants left with no real token, give NaN.
    """
    adapter = as_adapter(model)
    ids, mask = batch.ids, batch.mask
    if mask.dtype != torch.bool or mask.shape != ids.shape:
        raise ValueError(f"batch.mask must be a bool tensor shaped like batch.ids {tuple(ids.shape)}")
    B, T = ids.shape
    scores = torch.as_tensor(scores, device=ids.device)
    if scores.shape != ids.shape:
        raise ValueError(f"scores {tuple(scores.shape)} must have the shape of batch.ids {tuple(ids.shape)}")
    if special is None:
        special = adapter.special_mask(ids)
    mask, ids, scores, special = move_padding(mask, ids, scores, special.to(torch.bool), side="right")
    fractions = tuple(_check_fraction(f) for f in fractions)
    if not fractions:
        raise ValueError("fractions is empty")
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    modes = _resolve_modes(adapter, modes)
    mask_id = _resolve_mask_id(adapter, mask_id)
    if "mask" in modes and mask_id is None:
        raise ValueError('mode "mask" needs a mask_id: the model has no [MASK] token; pass mask_id=')
    special = special & mask
    pad_id = int(adapter.pad_id or 0)
    eligible = mask & ~special
    n = eligible.sum(-1)

    was_training = adapter.model.training
    adapter.model.eval()
    try:
        with torch.no_grad():
            if target is None:
                target = adapter.logits(TokenBatch(*adapter.pad_like_model(ids, mask))).argmax(-1)
            target = torch.as_tensor(target, device=ids.device).long().reshape(-1)
            if target.shape[0] != B:
                raise ValueError(f"target has {target.shape[0]} entries for a batch of {B}")
            all_ids, all_mask, ks = [ids], [mask], []
            for fraction in fractions:
                top = top_k_mask(scores, mask, special, fraction)
                ks.append(top.sum(-1))
                for mode in modes:
                    for drop in (top, eligible & ~top):          # comprehensiveness, sufficiency
                        e_ids, e_mask = erase(ids, mask, drop, mode, mask_id=mask_id, pad_id=pad_id,
                                              special=special)
                        all_ids.append(e_ids)
                        all_mask.append(e_mask)
            n_variants = len(all_ids)
            p = _target_probabilities(adapter, torch.cat(all_ids), torch.cat(all_mask), target.repeat(n_variants),
                                      max_rows).view(n_variants, B).cpu().numpy()
    finally:
        adapter.model.train(was_training)

    n_np = n.cpu().numpy()
    undefined = n_np == 0
    p_full = p[0]
    frames, v = [], 1
    for fi, fraction in enumerate(fractions):
        k = ks[fi].cpu().numpy()
        for mode in modes:
            p_without, p_only = p[v], p[v + 1]
            v += 2
            comp = np.where(undefined, np.nan, p_full - p_without)
            suff = np.where(undefined, np.nan, p_full - p_only)
            frames.append(pd.DataFrame({
                "example": np.arange(B), "fraction": fraction, "mode": mode, "n_tokens": n_np, "k": k,
                "p_full": p_full, "p_without_top_k": p_without, "p_only_top_k": p_only,
                "comprehensiveness": comp, "sufficiency": suff,
            }))
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values("example", kind="stable").reset_index(drop=True)




def explanation_faithfulness(model, explanation: Explanation, fractions: Iterable[float] = FRACTIONS,
                             modes: Sequence[str] | None = None, batch_size: int = 16, tokenizer=None,
                             **kwargs) -> pd.DataFrame:
    """:func:`faithfulness_curves` of a classifier :class:`Explanation` (rebuilt from its ``input_ids``),
    explaining the classes it explains; ``example`` numbers the explanation's examples. Pass a Hugging Face
    model's ``tokenizer`` so its special tokens ([CLS], [SEP]) are never erased."""
    if explanation.family != "classifier" or explanation.input_ids is None:
        raise ValueError("explanation_faithfulness needs a classifier Explanation with input_ids (from explain() "
                         "or attribute_batches())")
    adapter = as_adapter(model, tokenizer)
    parts = []
    for start in range(0, len(explanation), batch_size):
        rows = range(start, min(start + batch_size, len(explanation)))
        T = max(len(explanation.input_ids[i]) for i in rows)
        ids = torch.full((len(rows), T), int(adapter.pad_id or 0), dtype=torch.long)
        scores = torch.zeros(len(rows), T)
        for j, i in enumerate(rows):
            n = len(explanation.input_ids[i])
            ids[j, :n] = torch.as_tensor(explanation.input_ids[i])
            scores[j, :n] = torch.as_tensor(np.nan_to_num(explanation.scores[i], nan=0.0), dtype=torch.float32)
        mask = torch.arange(T)[None] < torch.as_tensor([len(explanation.input_ids[i]) for i in rows])[:, None]
        target = torch.as_tensor([int(explanation.targets[i]) for i in rows])
        device = adapter.device
        df = faithfulness_curves(adapter, TokenBatch(ids.to(device), mask.to(device)), scores.to(device),
                                 target.to(device), fractions, modes, **kwargs)
        parts.append(df.assign(example=df["example"] + start))
    return pd.concat(parts, ignore_index=True)
