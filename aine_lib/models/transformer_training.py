"""Fine-tuning and training :class:`~aine_lib.models.transformer_encoder.TransformerClassifier`, cached.

* Inputs are token-id lists that already hold the special tokens
  (``[CLS] ... [SEP]``): :func:`encode_wordpieces` for MiniLM (the
  checkpoint's wordpiece tokenizer over our word tokens, so each wordpiece
  knows its word) and :func:`encode_words` for the from-scratch model (our
  word vocabulary plus three special ids).
* AdamW with linear warm-up then linear decay (Devlin et al. 2019), weight
  decay off for biases and LayerNorm; batches and early stopping as for the
  RNN models (:mod:`aine_lib.models.training`); the epoch with the best
  **dev** macro-F1 is kept.
* :func:`trained_transformer` caches the chosen weights under
  ``transformer_classifiers``, keyed by the data, the encoding, the model
  config (and the checkpoint's hash for MiniLM), the training config and the seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from tqdm.auto import tqdm

from aine_lib.cache import ResultCache
from aine_lib.config import ConfigError
from aine_lib.data.text import Vocabulary
from aine_lib.models.rnn_attention import MODEL_CODE_VERSION
from aine_lib.models.training import (HISTORY_COLUMNS, BestEpoch, TrainResult, _load_result, _ordered_batches,
                                      _save_result,
                                      _training_batches)
from aine_lib.models.precision import Precision, check_precision, training_autocast
from aine_lib.models.transformer_encoder import TransformerClassifier
from aine_lib.repro import make_generator, seed_everything


@dataclass(frozen=True)
class TransformerTrainConfig:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    patience: int | None = 1
    selection_metric: Literal["f1", "accuracy"] = "f1"
    precision: Precision = "float32"      # "bfloat16": mixed-precision training steps (models/precision.py)

    def __post_init__(self) -> None:
        check_precision(self.precision, "precision")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError(f"need lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be a positive integer or None, got {self.patience}")


# ----- encodings -----------------------------------------------------------------

@dataclass
class EncodedSplit:
    """Token ids with specials, labels, and for each position the index of its word (-1 for specials)."""

    ids: list[list[int]]
    labels: list[int]
    word_index: list[list[int]]

    def __len__(self) -> int:
        return len(self.ids)


def encode_wordpieces(df: pd.DataFrame, tokenizer, max_length: int, cls_id: int, sep_id: int) -> EncodedSplit:
    """``[CLS] wordpieces [SEP]`` of each row's word tokens, truncated to ``max_length`` pieces in all."""
    if max_length < 3:
        raise ValueError(f"max_length must leave room for [CLS], one piece and [SEP]; got {max_length}")
    ids, words = [], []
    for tokens in df["tokens"]:
        enc = tokenizer.encode(list(tokens), is_pretokenized=True, add_special_tokens=False)
        pieces, word_ids = enc.ids[: max_length - 2], enc.word_ids[: max_length - 2]
        ids.append([cls_id, *pieces, sep_id])
        words.append([-1, *[w if w is not None else -1 for w in word_ids], -1])
    return EncodedSplit(ids, df["label"].astype(int).tolist(), words)


def scratch_vocabulary_ids(vocab: Vocabulary) -> dict[str, int]:
    """Special ids appended after the word vocabulary: [CLS], [SEP], [MASK]."""
    n = len(vocab)
    return {"cls_id": n, "sep_id": n + 1, "mask_id": n + 2, "vocab_size": n + 3}


def encode_words(df: pd.DataFrame, vocab: Vocabulary, max_length: int) -> EncodedSplit:
    """``[CLS] word ids [SEP]`` with the special ids of :func:`scratch_vocabulary_ids`."""
    special = scratch_vocabulary_ids(vocab)
    ids, words = [], []
    for tokens in df["tokens"]:
        body = vocab.encode(list(tokens)[: max_length - 2])
        ids.append([special["cls_id"], *body, special["sep_id"]])
        words.append([-1, *range(len(body)), -1])
    return EncodedSplit(ids, df["label"].astype(int).tolist(), words)


# ----- prediction -----------------------------------------------------------------

@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, split: EncodedSplit, device, batch_size: int = 64,
                          head_mask: torch.Tensor | None = None) -> np.ndarray:
    """``[N, C]`` softmax outputs in the split's order (batched by length); ``head_mask [layers, heads]``
    scales each head's output (0 ablates it)."""
    was = model.training
    model.eval()
    out: list[np.ndarray | None] = [None] * len(split)
    try:
        for rows, batch in _ordered_batches(split.ids, split.labels, batch_size):
            batch = batch.to(device)
            kwargs = {} if head_mask is None else {"head_mask": head_mask.to(device)}
            probs = torch.softmax(model(batch.ids, batch.mask, **kwargs).logits.float(), -1).cpu().numpy()
            for j, i in enumerate(rows):
                out[i] = probs[j]
    finally:
        model.train(was)
    return np.stack(out)


def evaluate_split(model: torch.nn.Module, split: EncodedSplit, device, batch_size: int = 64) -> dict:
    predicted = predict_probabilities(model, split, device, batch_size).argmax(-1)
    gold = np.asarray(split.labels)
    return {"accuracy": float((predicted == gold).mean()),
            "f1": float(f1_score(gold, predicted, average="macro", zero_division=0)), "n": int(len(gold)),
            "correct": predicted == gold}


# ----- training ---------------------------------------------------------------------

def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_transformer(model: TransformerClassifier, train: EncodedSplit, dev: EncodedSplit,
                      cfg: TransformerTrainConfig, seed: int, device, progress: bool = False) -> TrainResult:
    """Train with AdamW and a warm-up/decay schedule; keep the epoch with the best dev metric."""
    if not len(train):
        raise ValueError("the training split is empty")
    model.to(device)
    generator = make_generator(seed)
    optimiser = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_fraction * total)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    metric = "dev_f1" if cfg.selection_metric == "f1" else "dev_accuracy"
    rows, best = [], BestEpoch(cfg.patience)
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="epochs", disable=not progress, leave=False):
        started = time.perf_counter()
        model.train()
        loss_sum, count = 0.0, 0
        batches = _training_batches(train.ids, train.labels, cfg.batch_size, generator)
        for batch in tqdm(batches, desc=f"epoch {epoch}", disable=not progress, leave=False):
            batch = batch.to(device)
            with training_autocast(device, cfg.precision):
                logits = model(batch.ids, batch.mask).logits
            loss = F.cross_entropy(logits.float(), batch.labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * len(batch)
            count += len(batch)
        d = evaluate_split(model, dev, device)
        row = {"epoch": epoch, "train_loss": loss_sum / count, "dev_accuracy": d["accuracy"], "dev_f1": d["f1"],
               "seconds": time.perf_counter() - started}
        rows.append(row)
        if best.update(epoch, row[metric], model):
            break
    best.restore(model)
    return TrainResult(best.state, best.epoch, pd.DataFrame(rows, columns=list(HISTORY_COLUMNS)))


def trained_transformer(cache: ResultCache, key: Mapping[str, Any], build: Callable[[], TransformerClassifier],
                        train: EncodedSplit, dev: EncodedSplit, cfg: TransformerTrainConfig, seed: int, device,
                        progress: bool = False) -> tuple[TransformerClassifier, TrainResult]:
    """Train (or load) the model ``build()`` returns; ``key`` must identify data, encoding and initial weights."""
    params = dict(key) | {"train": cfg, "seed": seed, "code_version": MODEL_CODE_VERSION,
                          "n_train": len(train), "n_dev": len(dev)}
    seed_everything(seed)
    model = build().to(device)

    def compute() -> TrainResult:
        return train_transformer(model, train, dev, cfg, seed, device, progress=progress)

    result = cache.get_or_compute("transformer_classifiers", params, compute, save=_save_result, load=_load_result,
                                  suffix="pt")
    model.load_state_dict(result.state_dict)
    model.eval()
    return model, result


def ids_fingerprint(splits: Sequence[EncodedSplit]) -> str:
    """SHA-256 of the encoded ids and labels: what training sees."""
    import hashlib

    h = hashlib.sha256()
    for split in splits:
        for ids, label in zip(split.ids, split.labels):
            h.update(np.asarray(ids, dtype=np.int64).tobytes())
            h.update(int(label).to_bytes(2, "little"))
        h.update(b"|")
    return h.hexdigest()
