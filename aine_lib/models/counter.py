"""Models of Wiegreffe & Pinter 2019, "Attention is not not Explanation".

* :class:`GuidedClassifier` -- the *diagnostic* (W&P section 5): a model
  without context (the Average encoder, W&P's "MLP") whose attention is not
  its own but is read from a frozen *guide* model on the same input. If a
  guide's attention carries information about the task, it should help the
  context-free model more than uniform weights do.
* :func:`train_consistent_adversary` -- the *model-consistent adversary* (W&P
  section 4): a whole new model trained so that its predictions stay close to
  the base model's (TVD) while its attention moves away from the base
  model's (JSD), ``loss = TVD - lambda * JSD``. Unlike J&W's per-instance
  search, the adversary must produce its attention from the input by itself.
  The epoch is chosen on the dev split by the same objective (W&P's code chose
  it on training loss; their base models on test).

Both are cached with :class:`~aine_lib.cache.ResultCache` like
:func:`~aine_lib.models.training.trained_classifier`; the caller passes a key
that identifies the guide / base model.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from aine_lib.cache import ResultCache
from aine_lib.data.text import TextClassificationData, Vocabulary
from aine_lib.metrics.divergence import jensen_shannon, total_variation
from aine_lib.models.rnn_attention import (MODEL_CODE_VERSION, AttentionClassifier, ClassifierOutput,
                                           RNNClassifierConfig)
from aine_lib.models.training import (BestEpoch, TrainConfig, TrainResult, _load_result, _ordered_batches,
                                      _save_result,
                                      _training_batches, _training_vocabulary, data_fingerprint,
                                      embeddings_fingerprint, encode_split, train_classifier)
from aine_lib.repro import make_generator, seed_everything

ADVERSARY_HISTORY = ("epoch", "train_loss", "dev_objective", "dev_tvd", "dev_jsd", "seconds")


# ----- the diagnostic: attention from a frozen guide ---------------------------

class GuidedClassifier(nn.Module):
    """``student`` with its attention replaced by ``guide``'s attention on the same input.

    The guide is frozen (no gradients, always in eval mode); only the student
    is trained. ``forward`` returns the student's logits and the guide's
    attention, so :func:`~aine_lib.models.training.predict` and ``evaluate``
    work unchanged.
    """

    def __init__(self, student: AttentionClassifier, guide: AttentionClassifier):
        super().__init__()
        self.student = student
        self.guide = guide.eval().requires_grad_(False)

    @property
    def cfg(self) -> RNNClassifierConfig:
        return self.student.cfg

    def train(self, mode: bool = True) -> "GuidedClassifier":
        super().train(mode)
        self.guide.eval()
        return self

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> ClassifierOutput:
        if "attention" in kwargs:
            raise ValueError("a GuidedClassifier takes its attention from the guide; call .student to set it")
        with torch.no_grad():
            attention = self.guide(ids, mask).attention
        return self.student(ids, mask, attention=attention.detach(), **kwargs)


def trained_guided_classifier(cache: ResultCache, data: TextClassificationData, student_cfg: RNNClassifierConfig,
                              guide: AttentionClassifier, guide_key: Mapping[str, Any], train_cfg: TrainConfig,
                              seed: int, device: torch.device | str, embeddings: np.ndarray | None = None,
                              progress: bool = False) -> tuple[GuidedClassifier, TrainResult]:
    """Train (or load) a student guided by ``guide``; ``guide_key`` must identify the guide uniquely."""
    vocab = _training_vocabulary(data, student_cfg.vocab_size)
    params = {"data": data.name, "data_fingerprint": data_fingerprint(data), "vocab_size": len(vocab),
              "embeddings": embeddings_fingerprint(embeddings), "student": student_cfg, "guide": dict(guide_key),
              "train": train_cfg, "seed": seed, "code_version": MODEL_CODE_VERSION}
    seed_everything(seed)
    model = GuidedClassifier(AttentionClassifier(student_cfg, embeddings), guide).to(device)

    def compute() -> TrainResult:
        result = train_classifier(model, data.train, data.dev, vocab, train_cfg, seed, device, progress=progress)
        student_state = {k.removeprefix("student."): v for k, v in result.state_dict.items()
                         if k.startswith("student.")}
        return TrainResult(student_state, result.best_epoch, result.history)

    result = cache.get_or_compute("wp_guided", params, compute, save=_save_result, load=_load_result, suffix="pt")
    model.student.load_state_dict(result.state_dict)
    model.eval()
    return model, result


# ----- the model-consistent adversary ------------------------------------------

def adversary_objective(adversary_out: ClassifierOutput, base_out: ClassifierOutput, mask: torch.Tensor,
                        lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-instance ``(objective, tvd, jsd)``: ``TVD(outputs) - lam * JSD(attentions)`` (lower is better)."""
    tvd = total_variation(torch.softmax(adversary_out.logits, -1), torch.softmax(base_out.logits, -1))
    jsd = jensen_shannon(adversary_out.attention, base_out.attention, mask=mask)
    return tvd - lam * jsd, tvd, jsd


@torch.no_grad()
def compare_with_base(model: AttentionClassifier, base: AttentionClassifier, df: pd.DataFrame, vocab: Vocabulary,
                      device: torch.device | str, max_length: int | None = None, batch_size: int = 256
                      ) -> pd.DataFrame:
    """Per row of ``df`` (in order): TVD between the two models' outputs, JSD between their attentions,
    and whether each is right. Works for any two models on the same vocabulary (seeds, adversaries)."""
    ids = encode_split(df, vocab, max_length)
    labels = df["label"].tolist()
    tvd = np.zeros(len(ids))
    jsd = np.zeros(len(ids))
    correct, base_correct = np.zeros(len(ids), bool), np.zeros(len(ids), bool)
    was = model.training, base.training
    model.eval()
    base.eval()
    try:
        for rows, batch in _ordered_batches(ids, labels, batch_size):
            batch = batch.to(device)
            a, b = model(batch.ids, batch.mask), base(batch.ids, batch.mask)
            _, t, j = adversary_objective(a, b, batch.mask, 0.0)
            tvd[rows], jsd[rows] = t.cpu().numpy(), j.cpu().numpy()
            correct[rows] = (a.logits.argmax(-1) == batch.labels).cpu().numpy()
            base_correct[rows] = (b.logits.argmax(-1) == batch.labels).cpu().numpy()
    finally:
        model.train(was[0])
        base.train(was[1])
    return pd.DataFrame({"example": np.arange(len(ids)), "length": [len(x) for x in ids], "tvd": tvd, "jsd": jsd,
                         "correct": correct, "base_correct": base_correct})


def train_consistent_adversary(adversary: AttentionClassifier, base: AttentionClassifier, train_df: pd.DataFrame,
                               dev_df: pd.DataFrame, vocab: Vocabulary, train_cfg: TrainConfig, lam: float,
                               seed: int, device: torch.device | str, progress: bool = False) -> TrainResult:
    """Train ``adversary`` to minimise ``TVD(its output, base output) - lam * JSD(its attention, base attention)``.

    Batches, optimiser and early stopping are those of
    :func:`~aine_lib.models.training.train_classifier`; the epoch with the
    lowest dev objective is kept. Gold labels are never used.
    """
    if lam < 0:
        raise ValueError(f"lambda must be >= 0, got {lam}")
    adversary.to(device)
    base.to(device).eval()
    train_ids = encode_split(train_df, vocab, train_cfg.max_length)
    dev_ids = encode_split(dev_df, vocab, train_cfg.max_length)
    train_labels = train_df["label"].tolist()
    generator = make_generator(seed)
    optimiser = torch.optim.Adam(adversary.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay,
                                 amsgrad=train_cfg.amsgrad)
    rows, best = [], BestEpoch(train_cfg.patience, higher_is_better=False)
    for epoch in tqdm(range(1, train_cfg.epochs + 1), desc="epochs", disable=not progress, leave=False):
        started = time.perf_counter()
        adversary.train()
        total, count = 0.0, 0
        for batch in _training_batches(train_ids, train_labels, train_cfg.batch_size, generator):
            batch = batch.to(device)
            with torch.no_grad():
                target = base(batch.ids, batch.mask)
            objective, _, _ = adversary_objective(adversary(batch.ids, batch.mask), target, batch.mask, lam)
            loss = objective.mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        adversary.eval()
        sums = np.zeros(3)
        with torch.no_grad():
            for _, batch in _ordered_batches(dev_ids, dev_df["label"].tolist(), 256):
                batch = batch.to(device)
                obj, tvd, jsd = adversary_objective(adversary(batch.ids, batch.mask), base(batch.ids, batch.mask),
                                                    batch.mask, lam)
                sums += [float(obj.sum()), float(tvd.sum()), float(jsd.sum())]
        dev = sums / len(dev_ids)
        row = {"epoch": epoch, "train_loss": total / count, "dev_objective": dev[0], "dev_tvd": dev[1],
               "dev_jsd": dev[2], "seconds": time.perf_counter() - started}
        rows.append(row)
        if best.update(epoch, row["dev_objective"], adversary):
            break
    best.restore(adversary)
    return TrainResult(best.state, best.epoch, pd.DataFrame(rows, columns=list(ADVERSARY_HISTORY)))


def trained_consistent_adversary(cache: ResultCache, data: TextClassificationData, model_cfg: RNNClassifierConfig,
                                 base: AttentionClassifier, base_key: Mapping[str, Any], lam: float,
                                 train_cfg: TrainConfig, seed: int, device: torch.device | str,
                                 embeddings: np.ndarray | None = None, progress: bool = False
                                 ) -> tuple[AttentionClassifier, TrainResult]:
    """Train (or load) the adversary of ``base`` for one ``lam``; ``base_key`` must identify the base model."""
    vocab = _training_vocabulary(data, model_cfg.vocab_size)
    params = {"data": data.name, "data_fingerprint": data_fingerprint(data), "vocab_size": len(vocab),
              "embeddings": embeddings_fingerprint(embeddings), "model": model_cfg, "base": dict(base_key),
              "lambda": float(lam), "train": train_cfg, "seed": seed, "code_version": MODEL_CODE_VERSION}
    seed_everything(seed)
    adversary = AttentionClassifier(model_cfg, embeddings).to(device)

    def compute() -> TrainResult:
        return train_consistent_adversary(adversary, base, data.train, data.dev, vocab, train_cfg, lam, seed,
                                          device, progress=progress)

    result = cache.get_or_compute("wp_adversaries", params, compute, save=_save_result, load=_load_result,
                                  suffix="pt")
    adversary.load_state_dict(result.state_dict)
    adversary.eval()
    return adversary, result
