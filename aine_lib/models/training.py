"""Training, evaluation and prediction for :class:`AttentionClassifier`, with a cached entry point.

>>> model, result = trained_classifier(cache, data, model_cfg, TrainConfig(), seed=0, device=device,
...                                    embeddings=glove_matrix)
>>> evaluate(model, data.test, vocab, device)        # {"accuracy": ..., "f1": ..., "n": ...}

* Data order comes from a ``torch.Generator`` seeded with ``seed``; weights are
  initialised after :func:`aine_lib.repro.seed_everything`, so one seed gives
  one model.
* Model selection uses the dev split only (macro-F1 by default), after every
  epoch; the best epoch's weights are kept (the earliest on ties).
* :func:`trained_classifier` stores the result under the ``rnn_classifiers``
  namespace of a :class:`~aine_lib.cache.ResultCache`, keyed by the data, model
  and training parameters and the seed; a second call loads instead of training.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from tqdm.auto import tqdm

from aine_lib.cache import ResultCache
from aine_lib.config import ConfigError
from aine_lib.data.text import TextClassificationData, Vocabulary
from aine_lib.models.rnn_attention import MODEL_CODE_VERSION, AttentionClassifier, RNNClassifierConfig
from aine_lib.repro import TRAINING_THREADS, make_generator, seed_everything, torch_threads

CACHE_NAMESPACE = "rnn_classifiers"
HISTORY_COLUMNS = ("epoch", "train_loss", "dev_accuracy", "dev_f1", "seconds")
#: Training batches are drawn from length-sorted pools of this many batches (less padding, same randomness).
POOL_BATCHES = 50


@dataclass(frozen=True)
class TrainConfig:
    """How to train one classifier (Adam with amsgrad, as Jain & Wallace)."""

    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-5
    amsgrad: bool = True
    max_length: int | None = None               # truncate token ids to this many
    selection_metric: Literal["f1", "accuracy"] = "f1"   # dev metric that picks the epoch
    patience: int | None = None                 # stop after this many epochs without a better dev metric

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError(f"need lr > 0 and weight_decay >= 0, got lr={self.lr}, weight_decay={self.weight_decay}")
        if self.max_length is not None and self.max_length < 1:
            raise ConfigError(f"max_length must be a positive integer or None, got {self.max_length}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be a positive integer or None, got {self.patience}")
        if self.selection_metric not in ("f1", "accuracy"):
            raise ConfigError(f"selection_metric must be 'f1' or 'accuracy', got {self.selection_metric!r}")


# ----- batches ---------------------------------------------------------------

@dataclass
class Batch:
    """Right-padded token ids, the mask of real tokens and the labels."""

    ids: torch.Tensor      # [B, T] long, 0 at padding
    mask: torch.Tensor     # [B, T] bool, True at real tokens
    labels: torch.Tensor   # [B] long

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.ids.to(device), self.mask.to(device), self.labels.to(device))

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(-1)


def collate(token_id_lists: Sequence[Sequence[int]], labels: Sequence[int]) -> Batch:
    """Pad on the right with id 0 (``Vocabulary.pad_id``) to the longest sequence of the batch."""
    if len(token_id_lists) != len(labels):
        raise ValueError(f"{len(token_id_lists)} sequences but {len(labels)} labels")
    if not token_id_lists:
        raise ValueError("cannot collate an empty batch")
    lengths = [len(seq) for seq in token_id_lists]
    if min(lengths) < 1:
        raise ValueError("cannot collate an empty sequence; drop examples without tokens first")
    ids = torch.full((len(lengths), max(lengths)), Vocabulary.pad_id, dtype=torch.long)
    for i, seq in enumerate(token_id_lists):
        ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    mask = torch.arange(ids.shape[1]).unsqueeze(0) < torch.as_tensor(lengths).unsqueeze(1)
    return Batch(ids, mask, torch.as_tensor(list(labels), dtype=torch.long))


def encode_split(df: pd.DataFrame, vocab: Vocabulary, max_length: int | None = None) -> list[list[int]]:
    """Token ids of every row of ``df["tokens"]`` (in order), truncated to ``max_length``."""
    return [vocab.encode(tokens[:max_length] if max_length else tokens) for tokens in df["tokens"]]


def _ordered_batches(ids: list[list[int]], labels: Sequence[int], batch_size: int
                     ) -> Iterator[tuple[np.ndarray, Batch]]:
    """Batches of similar length (longest first) with the row indices each one holds."""
    order = np.argsort([-len(x) for x in ids], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        yield rows, collate([ids[i] for i in rows], [labels[i] for i in rows])


def _training_batches(ids: list[list[int]], labels: Sequence[int], batch_size: int,
                      generator: torch.Generator) -> list[Batch]:
    """One epoch of shuffled batches: shuffle, sort within pools by length, shuffle batch order."""
    perm = torch.randperm(len(ids), generator=generator).tolist()
    pool = batch_size * POOL_BATCHES
    batches = []
    for start in range(0, len(perm), pool):
        chunk = sorted(perm[start:start + pool], key=lambda i: len(ids[i]))
        for b in range(0, len(chunk), batch_size):
            rows = chunk[b:b + batch_size]
            batches.append(collate([ids[i] for i in rows], [labels[i] for i in rows]))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


# ----- prediction and evaluation ---------------------------------------------

@dataclass
class Predictions:
    """A split's model outputs as NumPy, in the split's row order."""

    probabilities: np.ndarray          # [N, C] softmax of the logits
    attention: list[np.ndarray]        # attention[i] has one weight per token of row i (padding removed)
    labels: np.ndarray                 # [N] gold labels

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(-1)

    def __len__(self) -> int:
        return len(self.probabilities)


@torch.no_grad()
def predict(model: AttentionClassifier, df: pd.DataFrame, vocab: Vocabulary, device: torch.device | str,
            batch_size: int = 256, max_length: int | None = None) -> Predictions:
    """Output distributions and attention for every row of ``df`` (batched by length, returned in order)."""
    ids = encode_split(df, vocab, max_length)
    labels = df["label"].tolist()
    if not ids:
        raise ValueError("cannot predict on an empty data frame")
    was_training = model.training
    model.eval()
    probabilities: list[np.ndarray | None] = [None] * len(ids)
    attention: list[np.ndarray | None] = [None] * len(ids)
    try:
        for rows, batch in _ordered_batches(ids, labels, batch_size):
            batch = batch.to(device)
            out = model(batch.ids, batch.mask)
            probs = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
            att = out.attention.float().cpu().numpy()
            for j, i in enumerate(rows):
                probabilities[i] = probs[j]
                attention[i] = att[j, : len(ids[i])].copy()
    finally:
        model.train(was_training)
    return Predictions(np.stack(probabilities), attention, np.asarray(labels, dtype=np.int64))


def evaluate(model: AttentionClassifier, df: pd.DataFrame, vocab: Vocabulary, device: torch.device | str,
             batch_size: int = 256, max_length: int | None = None) -> dict[str, float | int]:
    """``{"accuracy", "f1" (macro), "n"}`` of the model on ``df``."""
    preds = predict(model, df, vocab, device, batch_size=batch_size, max_length=max_length)
    predicted, gold = preds.predicted, preds.labels
    return {
        "accuracy": float((predicted == gold).mean()),
        "f1": float(f1_score(gold, predicted, average="macro", zero_division=0)),
        "n": int(len(gold)),
    }


# ----- training ----------------------------------------------------------------

@dataclass
class TrainResult:
    """The chosen (best dev) weights on CPU, the epoch they come from and the per-epoch history."""

    state_dict: dict[str, torch.Tensor]
    best_epoch: int
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(HISTORY_COLUMNS)))

    @property
    def best_dev_f1(self) -> float:
        return float(self.history.loc[self.history["epoch"] == self.best_epoch, "dev_f1"].iloc[0])

    @property
    def best_dev_accuracy(self) -> float:
        return float(self.history.loc[self.history["epoch"] == self.best_epoch, "dev_accuracy"].iloc[0])


class BestEpoch:
    """The epoch with the best dev score so far, its weights (a CPU copy), and when to stop early.

    ``update`` returns True when ``patience`` epochs have passed without a
    strictly better score (the earliest best epoch wins ties). Shared by every
    training loop of the study.
    """

    def __init__(self, patience: int | None, higher_is_better: bool = True):
        self.patience = patience
        self.sign = 1.0 if higher_is_better else -1.0
        self.score = -float("inf")
        self.epoch = 0
        self.state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, score: float, model: torch.nn.Module) -> bool:
        if self.sign * score > self.score:
            self.score, self.epoch = self.sign * score, epoch
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return False
        return self.patience is not None and epoch - self.epoch >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        """Load the best epoch's weights into ``model`` and put it in eval mode."""
        model.load_state_dict(self.state)
        model.eval()


def train_classifier(model: AttentionClassifier, train_df: pd.DataFrame, dev_df: pd.DataFrame,
                     vocab: Vocabulary, train_cfg: TrainConfig, seed: int, device: torch.device | str,
                     progress: bool = False) -> TrainResult:
    """Train with Adam + cross-entropy; keep the epoch with the best dev metric.

    The model is moved to ``device`` and ends holding the chosen epoch's weights
    (in eval mode); the returned state dict is a CPU copy of them.
    """
    model.to(device)
    train_ids = encode_split(train_df, vocab, train_cfg.max_length)
    train_labels = train_df["label"].tolist()
    if not train_ids:
        raise ValueError("the training split is empty")
    generator = make_generator(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]   # a frozen guide model is not trained
    optimiser = torch.optim.Adam(trainable, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay,
                                 amsgrad=train_cfg.amsgrad)
    metric = "dev_f1" if train_cfg.selection_metric == "f1" else "dev_accuracy"
    rows, best = [], BestEpoch(train_cfg.patience)
    for epoch in tqdm(range(1, train_cfg.epochs + 1), desc="epochs", disable=not progress, leave=False):
        started = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        batches = _training_batches(train_ids, train_labels, train_cfg.batch_size, generator)
        for batch in tqdm(batches, desc=f"epoch {epoch}", disable=not progress, leave=False):
            batch = batch.to(device)
            loss = F.cross_entropy(model(batch.ids, batch.mask).logits, batch.labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        dev = evaluate(model, dev_df, vocab, device, max_length=train_cfg.max_length)
        row = {"epoch": epoch, "train_loss": total / count, "dev_accuracy": dev["accuracy"],
               "dev_f1": dev["f1"], "seconds": time.perf_counter() - started}
        rows.append(row)
        if best.update(epoch, row[metric], model):
            break  # early stopping on dev: the chosen epoch is the same as with more epochs unless dev improves later
    best.restore(model)
    return TrainResult(best.state, best.epoch, pd.DataFrame(rows, columns=list(HISTORY_COLUMNS)))


# ----- cached entry point ------------------------------------------------------

def data_fingerprint(data: TextClassificationData, splits: Sequence[str] = ("train", "dev")) -> str:
    """SHA-256 of the tokens and labels of ``splits``: what training sees, nothing else."""
    h = hashlib.sha256()
    for split in splits:
        df = data.splits[split]
        h.update(f"#{split}\n".encode())
        for tokens, label in zip(df["tokens"], df["label"]):
            h.update(f"{int(label)}\t{' '.join(tokens)}\n".encode())
    return h.hexdigest()


def embeddings_fingerprint(embeddings: np.ndarray | None) -> str | None:
    if embeddings is None:
        return None
    arr = np.ascontiguousarray(embeddings, dtype=np.float32)
    return hashlib.sha256(f"{arr.shape}".encode() + arr.tobytes()).hexdigest()[:20]


def _save_result(result: TrainResult, path: Path) -> None:
    history = {c: [v.item() if isinstance(v, np.generic) else v for v in result.history[c].tolist()]
               for c in result.history.columns}
    torch.save({"state_dict": result.state_dict, "best_epoch": int(result.best_epoch), "history": history}, path)


def _load_result(path: Path) -> TrainResult:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return TrainResult(blob["state_dict"], int(blob["best_epoch"]), pd.DataFrame(blob["history"]))


def _training_vocabulary(data: TextClassificationData, vocab_size: int) -> Vocabulary:
    """The vocabulary the model was built for.

    ``Vocabulary.build`` keeps the most frequent tokens first, so the vocabulary
    for any ``min_freq`` is the first ``len(vocab)`` entries of the unrestricted
    one: capping at ``vocab_size`` rebuilds it exactly.
    """
    vocab = data.build_vocabulary(max_size=vocab_size)
    if len(vocab) != vocab_size:
        raise ValueError(
            f"model_cfg.vocab_size is {vocab_size} but the training split of {data.name!r} has only "
            f"{len(vocab)} types (with <pad>, <unk>); set vocab_size=len(data.build_vocabulary(...))"
        )
    return vocab


def trained_classifier(cache: ResultCache, data: TextClassificationData, model_cfg: RNNClassifierConfig,
                       train_cfg: TrainConfig, seed: int, device: torch.device | str,
                       embeddings: np.ndarray | None = None, progress: bool = False
                       ) -> tuple[AttentionClassifier, TrainResult]:
    """Train (or load from ``cache``) the classifier, returning it on ``device`` in eval mode.

    The vocabulary is the training split's, capped at ``model_cfg.vocab_size``
    (which reproduces one built with any ``min_freq``). The cache key holds the
    data name, a fingerprint of the train/dev tokens and labels, the vocabulary
    size, a fingerprint of ``embeddings``, both configs and the seed.
    """
    if model_cfg.n_classes != len(data.label_names):
        raise ValueError(f"model_cfg.n_classes is {model_cfg.n_classes} but {data.name!r} has "
                         f"{len(data.label_names)} labels {list(data.label_names)}")
    vocab = _training_vocabulary(data, model_cfg.vocab_size)
    params = {
        "data": data.name,
        "data_fingerprint": data_fingerprint(data),
        "vocab_size": len(vocab),
        "embeddings": embeddings_fingerprint(embeddings),
        "model": model_cfg,
        "train": train_cfg,
        "seed": seed,
        "code_version": MODEL_CODE_VERSION,
        "torch_threads": TRAINING_THREADS,
    }
    seed_everything(seed)
    model = AttentionClassifier(model_cfg, embeddings).to(device)

    def compute() -> TrainResult:
        with torch_threads(TRAINING_THREADS):
            return train_classifier(model, data.train, data.dev, vocab, train_cfg, seed, device, progress=progress)

    result = cache.get_or_compute(CACHE_NAMESPACE, params, compute, save=_save_result, load=_load_result,
                                  suffix="pt")
    model.load_state_dict(result.state_dict)
    model.eval()
    return model, result
