"""Fine-tune any Hugging Face sequence classifier: a plain, seeded loop (AdamW, linear warm-up and decay).

Used where the study needs a Hugging Face classifier as a user would bring one (the quickstart): no
sentiment model is reachable offline, so MiniLM gets a head and a short fine-tune here.
"""

from __future__ import annotations

from typing import Sequence

import torch

from aine_lib.models.precision import check_precision, training_autocast
from aine_lib.repro import make_generator, seed_everything


def fine_tune_classifier(model, tokenizer, texts: Sequence[str], labels: Sequence[int], *, epochs: int = 1,
                         lr: float = 5e-5, batch_size: int = 16, max_length: int = 64, weight_decay: float = 0.01,
                         warmup_fraction: float = 0.1, seed: int = 0, precision: str = "float32") -> list[float]:
    """Train ``model`` in place on ``(texts, labels)``; returns the mean training loss of each epoch.

    ``precision="bfloat16"``: mixed-precision steps (:mod:`aine_lib.models.precision`; ~2x faster on a CPU
    with AMX/AVX512-BF16 or a GPU), the weights staying float32."""
    check_precision(precision)
    if len(texts) != len(labels) or not texts:
        raise ValueError(f"need the same, non-zero number of texts and labels, got {len(texts)} and {len(labels)}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    seed_everything(seed)
    device = next(model.parameters()).device
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    steps = epochs * -(-len(texts) // batch_size)
    warmup = max(1, int(warmup_fraction * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    gen = make_generator(seed)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(texts), generator=gen).tolist()
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt").to(device)
            with training_autocast(device, precision):
                logits = model(**enc).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), torch.as_tensor([labels[i] for i in idx],
                                                                                     device=device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss) * len(idx)
        losses.append(total / len(texts))
    model.eval()
    return losses


@torch.no_grad()
def predict_classes(model, tokenizer, texts: Sequence[str], batch_size: int = 64, max_length: int = 64) -> list[int]:
    device = next(model.parameters()).device
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt").to(device)
        out.extend(model(**enc).logits.argmax(-1).tolist())
    return out
