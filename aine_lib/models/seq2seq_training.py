"""Training the encoder-decoder: vocabularies, batches, label smoothing and the warm-up schedule.

As in Vaswani et al. 2017 (section 5.3-5.4): Adam with ``beta = (0.9, 0.98)``,
``eps = 1e-9``, learning rate ``d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)``
(times ``lr_scale``), label smoothing ``eps_ls`` on the cross-entropy. The
epoch with the lowest dev loss is kept.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from aine_lib.cache import atomic_write
from aine_lib.config import ConfigError
from aine_lib.models.precision import Precision, check_precision, training_autocast
from aine_lib.models.training import BestEpoch, TrainResult
from aine_lib.models.transformer import BOS, EOS, PAD, Seq2SeqTransformer
from aine_lib.repro import make_generator

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
UNK = 3


class TokenVocabulary:
    """Token <-> id with the specials first (pad 0, bos 1, eos 2, unk 3); deterministic order."""

    def __init__(self, tokens: Sequence[str]):
        self.itos = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]]) -> "TokenVocabulary":
        counts: dict[str, int] = {}
        for s in sentences:
            for t in s:
                counts[t] = counts.get(t, 0) + 1
        return cls(sorted(counts, key=lambda t: (-counts[t], t)))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(t, UNK) for t in tokens]

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.itos[i] for i in ids]


@dataclass
class Seq2SeqBatch:
    src: torch.Tensor       # [B, S]
    src_mask: torch.Tensor  # [B, S] bool
    tgt_in: torch.Tensor    # [B, T]  BOS y_1 ... y_n
    tgt_out: torch.Tensor   # [B, T]  y_1 ... y_n EOS (PAD after)
    tgt_mask: torch.Tensor  # [B, T] bool

    def to(self, device) -> "Seq2SeqBatch":
        return Seq2SeqBatch(*(t.to(device) for t in (self.src, self.src_mask, self.tgt_in, self.tgt_out,
                                                     self.tgt_mask)))

    def __len__(self) -> int:
        return self.src.shape[0]


def collate_pairs(src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]]) -> Seq2SeqBatch:
    """Right-padded source ids and teacher-forcing target input/output (BOS ... / ... EOS)."""
    if len(src_ids) != len(tgt_ids) or not src_ids:
        raise ValueError("need the same, non-zero number of source and target sequences")
    S = max(len(s) for s in src_ids)
    T = max(len(t) for t in tgt_ids) + 1
    src = torch.full((len(src_ids), S), PAD, dtype=torch.long)
    tgt_in = torch.full((len(src_ids), T), PAD, dtype=torch.long)
    tgt_out = torch.full((len(src_ids), T), PAD, dtype=torch.long)
    for i, (s, t) in enumerate(zip(src_ids, tgt_ids)):
        if not s:
            raise ValueError(f"source {i} is empty")
        src[i, : len(s)] = torch.as_tensor(s)
        tgt_in[i, : len(t) + 1] = torch.as_tensor([BOS, *t])
        tgt_out[i, : len(t) + 1] = torch.as_tensor([*t, EOS])
    return Seq2SeqBatch(src, src != PAD, tgt_in, tgt_out, tgt_in != PAD)


@dataclass(frozen=True)
class Seq2SeqTrainConfig:
    epochs: int = 20
    batch_size: int = 64
    warmup_steps: int = 400
    lr_scale: float = 1.0
    label_smoothing: float = 0.1
    patience: int | None = 3
    align_weight: float = 0.0      # > 0: supervise one cross-attention head with gold alignments (Garg et al. 2019)
    align_layer: int = -1
    align_head: int = 0
    precision: Precision = "float32"      # "bfloat16": mixed-precision training steps (models/precision.py)

    def __post_init__(self) -> None:
        check_precision(self.precision, "precision")
        if self.align_weight < 0:
            raise ConfigError(f"align_weight must be >= 0, got {self.align_weight}")
        if self.epochs < 1 or self.batch_size < 1 or self.warmup_steps < 1:
            raise ConfigError("epochs, batch_size and warmup_steps must be >= 1")
        if not 0 <= self.label_smoothing < 1 or not self.lr_scale > 0:
            raise ConfigError(f"need label_smoothing in [0, 1) and lr_scale > 0, got {self.label_smoothing}, "
                              f"{self.lr_scale}")


def noam_rate(step: int, d_model: int, warmup: int, scale: float = 1.0) -> float:
    """Vaswani et al.'s schedule: linear warm-up for ``warmup`` steps, then ``step^-0.5`` decay."""
    step = max(step, 1)
    return scale * d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)


def sequence_loss(logits: torch.Tensor, tgt_out: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD,
                           label_smoothing=label_smoothing)


@torch.no_grad()
def dev_loss(model: Seq2SeqTransformer, pairs: list[tuple[list[int], list[int]]], device, batch_size: int = 128
             ) -> float:
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        b = collate_pairs([s for s, _ in chunk], [t for _, t in chunk]).to(device)
        logits = model(b.src, b.src_mask, b.tgt_in, b.tgt_mask).logits
        n = int((b.tgt_out != PAD).sum())
        total += float(sequence_loss(logits, b.tgt_out)) * n
        count += n
    return total / max(count, 1)


def alignment_loss(cross: torch.Tensor, links: list[list[tuple[int, int]]], tgt_mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between one head's cross-attention ``[B, T, S]`` and the gold alignment.

    Each target position with links gets a uniform target distribution over its
    linked source positions (Garg et al. 2019); positions without links are
    not supervised.
    """
    target = torch.zeros_like(cross)
    for b, pairs in enumerate(links):
        for t, s in pairs:
            target[b, t, s] = 1.0
    total = target.sum(-1, keepdim=True)
    supervised = (total.squeeze(-1) > 0) & tgt_mask
    if not bool(supervised.any()):
        return cross.sum() * 0.0
    target = target / total.clamp(min=1.0)
    ce = -(target * torch.log(cross.clamp(min=1e-9))).sum(-1)
    return ce[supervised].mean()


def train_seq2seq(model: Seq2SeqTransformer, train: list[tuple[list[int], list[int]]],
                  dev: list[tuple[list[int], list[int]]], cfg: Seq2SeqTrainConfig, seed: int, device,
                  progress: bool = False, train_alignments: list[list[tuple[int, int]]] | None = None,
                  checkpoint: str | Path | None = None) -> TrainResult:
    """Teacher-forced training; keeps the epoch with the lowest dev loss (no label smoothing on dev).

    With ``cfg.align_weight > 0``, ``train_alignments`` (one list of
    ``(target, source)`` links per pair) supervise cross-attention head
    ``cfg.align_head`` of decoder layer ``cfg.align_layer``.

    ``checkpoint``: a file written (atomically) after every epoch with the
    weights, optimiser, schedule, random-number states, history and best
    epoch so far. If it exists when training starts, training resumes after
    its last epoch and ends with the same weights as an uninterrupted run
    (on the same device and thread count). The caller owns the file: it
    should be keyed by everything that defines the run, and deleted once the
    result is stored. An unreadable checkpoint is ignored with a warning.
    """
    if cfg.align_weight > 0 and (train_alignments is None or len(train_alignments) != len(train)):
        raise ValueError("align_weight > 0 needs train_alignments: one list of (target, source) links per pair")

    model.to(device)
    gen = make_generator(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: noam_rate(step + 1, model.cfg.d_model, cfg.warmup_steps, cfg.lr_scale))
    rows, best = [], BestEpoch(cfg.patience, higher_is_better=False)
    checkpoint = None if checkpoint is None else Path(checkpoint)
    start, stopped = 1, False
    if checkpoint is not None and checkpoint.exists():
        resumed = _load_checkpoint(checkpoint, model, optimiser, scheduler, gen, best)
        if resumed is not None:
            rows, last_epoch, stopped = resumed
            start = last_epoch + 1
    epochs = range(start, cfg.epochs + 1) if not stopped else range(0)
    for epoch in tqdm(epochs, desc="epochs", disable=not progress, leave=False, initial=start - 1,
                      total=cfg.epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        # sort pools of 50 batches by source length: less padding, same randomness
        pool = cfg.batch_size * 50
        batches = []
        for p in range(0, len(order), pool):
            chunk = sorted(order[p:p + pool], key=lambda i: len(train[i][0]))
            batches += [chunk[b:b + cfg.batch_size] for b in range(0, len(chunk), cfg.batch_size)]
        batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        total, tokens = 0.0, 0
        for rows_idx in batches:
            b = collate_pairs([train[i][0] for i in rows_idx], [train[i][1] for i in rows_idx]).to(device)
            with training_autocast(device, cfg.precision):
                out = model(b.src, b.src_mask, b.tgt_in, b.tgt_mask)
            loss = sequence_loss(out.logits.float(), b.tgt_out, cfg.label_smoothing)
            if cfg.align_weight > 0:
                head = out.attentions["cross"][cfg.align_layer][:, cfg.align_head].float()
                loss = loss + cfg.align_weight * alignment_loss(head, [train_alignments[i] for i in rows_idx],
                                                                b.tgt_mask)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            n = int((b.tgt_out != PAD).sum())
            total += float(loss.detach()) * n
            tokens += n
        d = dev_loss(model, dev, device)
        rows.append({"epoch": epoch, "train_loss": total / tokens, "dev_loss": d,
                     "seconds": time.perf_counter() - started, "train_tokens": tokens})
        stop = best.update(epoch, d, model)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, optimiser, scheduler, gen, best, rows, epoch, stop)
        if stop:
            break
    best.restore(model)
    return TrainResult(best.state, best.epoch, pd.DataFrame(rows))


def _rng_states() -> dict:
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _save_checkpoint(path: Path, model, optimiser, scheduler, gen: torch.Generator, best: BestEpoch,
                     rows: list[dict], epoch: int, stopped: bool) -> None:
    blob = {"format": 1, "epoch": epoch, "stopped": bool(stopped), "rows": rows,
            "model": model.state_dict(), "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
            "generator": gen.get_state(), "rng": _rng_states(),
            "best": {"score": best.score, "epoch": best.epoch, "state": best.state}}
    with atomic_write(path) as tmp:
        torch.save(blob, tmp)


def _load_checkpoint(path: Path, model, optimiser, scheduler, gen: torch.Generator, best: BestEpoch):
    """Restore everything ``_save_checkpoint`` wrote; ``(rows, epoch, stopped)``, or None if unreadable."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
        if blob.get("format") != 1:
            raise ValueError(f"unknown checkpoint format {blob.get('format')!r}")
        model.load_state_dict(blob["model"])
        optimiser.load_state_dict(blob["optimiser"])
        scheduler.load_state_dict(blob["scheduler"])
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint means: start afresh
        warnings.warn(f"ignoring training checkpoint {path} ({exc}); training from the first epoch", stacklevel=3)
        return None
    gen.set_state(blob["generator"])
    torch.set_rng_state(blob["rng"]["torch"])
    if "cuda" in blob["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["rng"]["cuda"])
    best.score, best.epoch, best.state = blob["best"]["score"], blob["best"]["epoch"], blob["best"]["state"]
    return blob["rows"], int(blob["epoch"]), bool(blob["stopped"])


def exact_match(predicted: Sequence[Sequence[int]], reference: Sequence[Sequence[int]]) -> float:
    return float(np.mean([list(p) == list(r) for p, r in zip(predicted, reference)]))
