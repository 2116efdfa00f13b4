"""Training precision: float32, or bfloat16 autocast (mixed precision) for the Transformers' training steps.

``bfloat16`` runs the matrix products of the forward and backward passes in bfloat16 under
:func:`torch.autocast` while the weights, the optimiser state and the loss stay float32 (Kalamkar et al.
2019; the usual mixed-precision recipe, without a loss scaler, which bfloat16's float32-sized exponent does
not need). On a CPU with AMX or AVX512-BF16, and on any recent GPU, it makes a MiniLM fine-tuning step
2-2.5x and a seq2seq step ~1.6x faster (``benchmarks/training_precision.py``). On a CPU without bfloat16
units it is correct but slower: keep ``float32`` there. Evaluation, decoding and every attribution method
run in float32 whatever the training precision, so explanations are never computed in reduced precision.
"""

from __future__ import annotations

import contextlib

import torch

from aine_lib.config.schema import PRECISIONS, Precision, check_precision

__all__ = ["PRECISIONS", "Precision", "check_precision", "training_autocast"]


def training_autocast(device: torch.device | str, precision: str):
    """The context a training step's forward pass (and loss) runs in."""
    check_precision(precision)
    if precision == "float32":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type if device_type in ("cuda", "cpu") else "cpu",
                          dtype=torch.bfloat16)
