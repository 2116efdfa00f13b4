"""Encoder-decoder Transformer on transduction tasks with known alignments: does cross-attention explain
each generated token?

:class:`Seq2SeqStudy` holds the synthetic tasks of ``cfg.seq2seq`` and one
trained model per task and seed (cached). Experiments return tidy DataFrames:

* :func:`performance` -- exact match, token accuracy and BLEU (sacrebleu) of
  greedy decoding on test;
* :func:`alignment_table` -- alignment error rate (AER) of every cross-attention
  layer and head, of the head mean, and of every explanation method, against
  the gold alignments, with bootstrap CIs over sentences.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from aine_lib.config import StudyConfig
from aine_lib.data.transduction import TransductionExample, make_task
from aine_lib.driver import progress_enabled
from aine_lib.io import ResultCache
from aine_lib.metrics.alignment import alignment_from_scores, corpus_aer
from aine_lib.models.rnn_attention import MODEL_CODE_VERSION
from aine_lib.models.seq2seq_training import TokenVocabulary, collate_pairs
from aine_lib.repro import get_device, seed_everything

EXPLANATIONS = ("cross_attention_mean", "rollout", "norm", "gradient_x_input", "integrated_gradients", "loo")


@dataclass
class TaskData:
    name: str
    splits: dict[str, list[TransductionExample]]
    vocab: TokenVocabulary

    def pairs(self, split: str) -> list[tuple[list[int], list[int]]]:
        return [(self.vocab.encode(e.source), self.vocab.encode(e.target)) for e in self.splits[split]]


@dataclass(frozen=True)
class TrainedSeq2Seq:
    task: str
    seed: int
    model: torch.nn.Module
    history: pd.DataFrame
    best_epoch: int


class Seq2SeqStudy:
    def __init__(self, cfg: StudyConfig, tasks: tuple[str, ...] | None = None):
        self.cfg = cfg
        s = cfg.seq2seq
        self.tasks = tuple(tasks or s.tasks)
        unknown = set(self.tasks) - set(s.tasks)
        if unknown:
            raise ValueError(f"tasks {sorted(unknown)} are not in seq2seq.tasks {list(s.tasks)}")
        self.device = get_device(cfg.device)
        self.cache = ResultCache(cfg.cache_path)
        self.progress = progress_enabled(cfg)
        self._data: dict[str, TaskData] = {}

    def data(self, task: str) -> TaskData:
        if task not in self._data:
            s = self.cfg.seq2seq
            offsets = {"train": 0, "dev": 1, "test": 2}
            sizes = {"train": s.n_train, "dev": s.n_dev, "test": s.n_test}
            splits = {k: make_task(task, sizes[k], seed=s.data_seed * 10 + offsets[k], min_len=s.min_len,
                                   max_len=s.max_len) for k in sizes}
            vocab = TokenVocabulary.build([e.source for e in splits["train"]] + [e.target for e in splits["train"]])
            self._data[task] = TaskData(task, splits, vocab)
        return self._data[task]

    def analysis(self, task: str) -> list[TransductionExample]:
        test = self.data(task).splits["test"]
        cap = self.cfg.seq2seq.max_analysis_examples
        return test if cap is None else test[:cap]

    def train(self, task: str, seed: int) -> TrainedSeq2Seq:
        from aine_lib.models.seq2seq_training import Seq2SeqTrainConfig, train_seq2seq
        from aine_lib.models.training import _load_result, _save_result
        from aine_lib.models.transformer import Seq2SeqConfig, Seq2SeqTransformer

        s = self.cfg.seq2seq
        data = self.data(task)
        model_cfg = Seq2SeqConfig(src_vocab=len(data.vocab), tgt_vocab=len(data.vocab), d_model=s.d_model,
                                  heads=s.heads, encoder_layers=s.encoder_layers, decoder_layers=s.decoder_layers,
                                  d_ff=s.d_ff, dropout=s.dropout, max_len=max(64, 2 * s.max_len + 8))
        train_cfg = Seq2SeqTrainConfig(epochs=s.epochs, batch_size=s.batch_size, warmup_steps=s.warmup_steps,
                                       lr_scale=s.lr_scale, label_smoothing=s.label_smoothing, patience=s.patience)
        train, dev = data.pairs("train"), data.pairs("dev")
        fingerprint = hashlib.sha256(repr((train, dev)).encode()).hexdigest()[:20]
        params = {"task": task, "data": fingerprint, "model": asdict(model_cfg), "train": train_cfg, "seed": seed,
                  "code_version": MODEL_CODE_VERSION}
        seed_everything(seed)
        model = Seq2SeqTransformer(model_cfg).to(self.device)

        def compute():
            return train_seq2seq(model, train, dev, train_cfg, seed, self.device, progress=self.progress)

        result = self.cache.get_or_compute("seq2seq_models", params, compute, save=_save_result, load=_load_result,
                                           suffix="pt")
        model.load_state_dict(result.state_dict)
        model.eval()
        return TrainedSeq2Seq(task, seed, model, result.history, result.best_epoch)

    def models(self):
        for task in self.tasks:
            for seed in self.cfg.seq2seq.seeds:
                yield self.train(task, seed)


def _batches(pairs, batch_size=64):
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        yield start, collate_pairs([s for s, _ in chunk], [t for _, t in chunk])


def performance(study: Seq2SeqStudy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per model: exact match, token accuracy, BLEU on test; a few example outputs per task)."""
    import sacrebleu

    rows, examples = [], []
    for m in study.models():
        data = study.data(m.task)
        pairs = data.pairs("test")
        hyps = []
        for _, b in _batches(pairs, 128):
            b = b.to(study.device)
            hyps += m.model.greedy(b.src, b.src_mask, max_len=2 * study.cfg.seq2seq.max_len + 4)
        refs = [t for _, t in pairs]
        exact = float(np.mean([h == r for h, r in zip(hyps, refs)]))
        token_acc = float(np.mean([np.mean([a == b for a, b in zip(h, r)]) if r else 1.0
                                   for h, r in zip(hyps, refs)]))
        hyp_text = [" ".join(data.vocab.decode(h)) for h in hyps]
        ref_text = [" ".join(data.vocab.decode(r)) for r in refs]
        bleu = sacrebleu.corpus_bleu(hyp_text, [ref_text], tokenize="none")
        rows.append({"task": m.task, "seed": m.seed, "best_epoch": m.best_epoch, "exact_match": exact,
                     "token_accuracy": token_acc, "bleu": bleu.score, "n_test": len(refs),
                     "train_seconds": float(m.history["seconds"].sum())})
        for i in range(3):
            examples.append({"task": m.task, "source": " ".join(data.splits["test"][i].source),
                             "reference": ref_text[i], "output": hyp_text[i]})
    return pd.DataFrame(rows), pd.DataFrame(examples)


def _aer_with_ci(pred: list[set], gold: list[set], seed: int, n_boot: int = 1000) -> tuple[float, float, float]:
    value = corpus_aer(pred, gold)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(gold), len(gold))
        stats.append(corpus_aer([pred[i] for i in idx], [gold[i] for i in idx]))
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return value, float(lo), float(hi)


def score_matrices(study: Seq2SeqStudy, m: TrainedSeq2Seq) -> dict[str, list[np.ndarray]]:
    """Per explanation (and per cross-attention layer/head): one ``[T, S]`` matrix per analysis example
    (teacher-forced on the reference target; rows = target tokens, EOS step dropped). Cached."""
    from aine_lib.attribution.seq2seq import explain

    data = study.data(m.task)
    examples = study.analysis(m.task)
    pairs = [(data.vocab.encode(e.source), data.vocab.encode(e.target)) for e in examples]
    key = {"model": [m.task, m.seed], "config": study.cfg.seq2seq, "n": len(pairs), "code_version": MODEL_CODE_VERSION}

    def compute() -> dict[str, list[np.ndarray]]:
        out: dict[str, list[np.ndarray]] = {}
        cfg = m.model.cfg
        for start, b in _batches(pairs, 32):
            b = b.to(study.device)
            results = {name: explain(m.model, b, name, **({"n_steps": study.cfg.seq2seq.ig_steps}
                                                           if name == "integrated_gradients" else {}))
                       for name in EXPLANATIONS}
            for layer in range(cfg.decoder_layers):
                for head in range(cfg.heads):
                    results[f"cross L{layer + 1} H{head}"] = explain(m.model, b, "cross_attention", layer=layer,
                                                                    head=head)
                results[f"cross L{layer + 1} mean"] = explain(m.model, b, "cross_attention", layer=layer)
            for i in range(len(b)):
                src_len, tgt_len = len(pairs[start + i][0]), len(pairs[start + i][1])
                for name, r in results.items():
                    out.setdefault(name, []).append(r[i, :tgt_len, :src_len].detach().cpu().numpy())
        return out

    return study.cache.get_or_compute("seq2seq_scores", key, compute)


def alignment_table(study: Seq2SeqStudy, seed: int = 0) -> pd.DataFrame:
    """``tables/alignment.csv``: corpus AER (bootstrap CI over sentences) of each method vs the gold alignment.

    Signed methods are read by their value (the source token that most raised
    ``log p(y_t)``); a random matrix gives the floor.
    """
    rows = []
    for m in study.models():
        examples = study.analysis(m.task)
        gold = [set(e.alignment) for e in examples]
        aligned_rows = [sorted({t for t, _ in e.alignment}) for e in examples]
        matrices = score_matrices(study, m)
        rng = np.random.default_rng(seed)
        matrices = dict(matrices) | {"random": [rng.random(x.shape) for x in next(iter(matrices.values()))]}
        for name, mats in matrices.items():
            pred = [alignment_from_scores(x, r) for x, r in zip(mats, aligned_rows)]
            value, lo, hi = _aer_with_ci(pred, gold, seed)
            kind = "cross-attention head" if name.startswith("cross L") else "method"
            rows.append({"task": m.task, "seed": m.seed, "method": name, "kind": kind, "aer": value, "ci_low": lo,
                         "ci_high": hi, "n_sentences": len(gold)})
    return pd.DataFrame(rows)
