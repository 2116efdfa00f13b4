"""Pretrained Transformer encoders (all-MiniLM-L6-v2) with attention as a first-class output.

The checkpoint comes from the offline data cache (``aine_lib.data.pretrained``);
nothing touches a model hub. Attention maps need the *eager* attention
implementation: with SDPA/flash kernels transformers computes no attention
probabilities, and :func:`attention_maps` refuses to return a silent nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch

from aine_lib.data.pretrained import minilm_dir


class AttentionUnavailableError(RuntimeError):
    """The model was loaded with an attention implementation that does not return attention weights."""


def load_minilm_classifier(root: Path, num_labels: int = 2, attn_implementation: str = "eager"):
    """(model, tokenizer): MiniLM with a freshly initialised classification head, from the local cache.

    The head's initial weights come from torch's global RNG: call
    ``aine_lib.repro.seed_everything(seed)`` first for a reproducible start.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = minilm_dir(root)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized head" notice is expected here
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar in the executed notebooks
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_labels, attn_implementation=attn_implementation, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model, tokenizer


def attention_maps(model, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """One ``[B, heads, T, T]`` attention tensor per layer (rows sum to 1 over unmasked keys)."""
    implementation = getattr(model.config, "_attn_implementation", None)
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise AttentionUnavailableError(
            f"the model (attention implementation {implementation!r}) returned no attention weights; "
            "load it with attn_implementation='eager' (load_minilm_classifier does by default)"
        )
    return tuple(attentions)
