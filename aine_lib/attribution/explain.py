"""``explain``: explain any supported model's outputs with any method, in one call.

>>> from aine_lib import explain
>>> out = explain(model, tokenizer, ["a gripping, funny film", "dull"], methods=["attention", "rollout",
...               "integrated_gradients"], integrated_gradients={"n_steps": 64})
>>> out["rollout"].plot(0); out["rollout"].to_frame()

``model`` is one of the study's models, a Hugging Face ``AutoModelForSequenceClassification`` or
``AutoModelForSeq2SeqLM`` (eager attention for the attention methods), or a
:class:`~aine_lib.models.protocol.ModelAdapter`. ``inputs`` are strings (tokenised with
``tokenizer``: a Hugging Face tokenizer, or the study's :class:`~aine_lib.data.text.Vocabulary`
after :func:`~aine_lib.data.text.tokenize`), lists of tokens, or lists of token ids.
``target``: classifiers -- ``None`` (the predicted class), one class, or one per input;
encoder-decoders -- ``None`` (the greedy output, generated here) or one target string per input
(teacher-forced). Options of a method go in a keyword named after it. Returns
``{method: Explanation}``.

:func:`attribute_batches` is the loop every experiment uses: one method over batches it has built.
"""

from __future__ import annotations

import time
from typing import Iterable, Sequence

import numpy as np
import torch

from aine_lib.attribution.base import AttributionMethod
from aine_lib.attribution.explanation import Explanation
from aine_lib.attribution.registry import ALL_NAMES, as_adapter, get_method, unknown_method
from aine_lib.config.errors import did_you_mean
from aine_lib.data.text import tokenize
from aine_lib.models.protocol import ClassifierAdapter, TokenBatch
from aine_lib.models.seq2seq_training import Seq2SeqBatch, collate_pairs
from aine_lib.models.training import collate


def attribute_batches(method: AttributionMethod, batches: Iterable, targets: str | Sequence = "predicted",
                      tokens: list[list[str]] | None = None, target_tokens: list[list[str]] | None = None
                      ) -> Explanation:
    """Scores of ``method`` over ``batches`` (in order) as one :class:`Explanation`.

    Classifiers: ``targets='predicted'`` explains each prediction, ``'label'`` the batch labels, or
    pass one class per example. Encoder-decoders are teacher-forced on each batch's targets; every
    real step is kept (the EOS step included).
    """
    adapter = method.adapter
    scores, tgt_scores, explained, deltas, input_ids = [], [], [], [], []
    started, offset = time.perf_counter(), 0
    for batch in batches:
        batch = batch.to(adapter.device)
        if adapter.family == "seq2seq":
            s = method.attribute(batch, None).detach().float().cpu().numpy()
            prefix, delta = method.last_target_scores, method.last_delta
            for i in range(len(batch)):
                t, n = int(batch.tgt_mask[i].sum()), int(batch.src_mask[i].sum())
                scores.append(s[i, :t, :n].astype(np.float64))
                explained.append(batch.tgt_out[i, :t].cpu().tolist())
                input_ids.append(batch.src[i][batch.src_mask[i]].cpu().numpy())
                if prefix is not None:
                    tgt_scores.append(prefix[i, :t, :t].detach().float().cpu().numpy().astype(np.float64))
                if delta is not None:
                    deltas.append(delta[i, :t].detach().double().cpu().numpy())
            continue
        target = _classifier_targets(adapter, batch, targets, offset)
        s = method.attribute(batch, target).detach().float().cpu().numpy()
        mask = batch.mask.cpu().numpy()
        scores.extend(s[i][mask[i]].astype(np.float64) for i in range(len(s)))
        ids = batch.ids.cpu().numpy()
        input_ids.extend(ids[i][mask[i]] for i in range(len(s)))
        explained.extend(target.cpu().tolist())
        if method.last_delta is not None:
            deltas.extend(method.last_delta.detach().float().cpu().numpy().tolist())
        offset += len(s)
    return Explanation(method.name, adapter.name, scores, explained, tokens=tokens, target_tokens=target_tokens,
                       target_scores=tgt_scores or None,
                       deltas=(deltas if adapter.family == "seq2seq" else np.asarray(deltas)) if deltas else None,
                       signed=method.signed, family=adapter.family, options=method.options(),
                       seconds=time.perf_counter() - started, input_ids=input_ids)


def _classifier_targets(adapter: ClassifierAdapter, batch, targets, offset: int) -> torch.Tensor:
    if isinstance(targets, str):
        if targets == "label":
            return batch.labels
        if targets != "predicted":
            raise ValueError(f"targets must be 'predicted', 'label' or one class per example, got {targets!r}")
        with torch.no_grad():
            return adapter.logits(batch).argmax(-1)
    return torch.as_tensor(np.asarray(targets[offset:offset + len(batch)]), dtype=torch.long,
                           device=batch.ids.device)


def _check_options(methods: Sequence[str], options: dict) -> None:
    for name in methods:
        if name not in ALL_NAMES:
            raise unknown_method(name)
    for key, value in options.items():
        if key not in methods:
            raise TypeError(f"explain() got option {key!r}, which is not a requested method"
                            + did_you_mean(key, methods)
                            + f" Options go in a keyword named after their method, e.g. "
                              f"integrated_gradients={{'n_steps': 64}}; requested: {list(methods)}")
        if not isinstance(value, dict):
            raise TypeError(f"options of {key!r} must be a dict, got {type(value).__name__}")


def _is_hf_tokenizer(tokenizer) -> bool:
    return tokenizer is not None and hasattr(tokenizer, "convert_ids_to_tokens")


def _encode_classifier(adapter, tokenizer, inputs: Sequence, batch_size: int, max_length: int | None):
    """(batches, tokens) for a classifier's inputs."""
    if _is_hf_tokenizer(tokenizer) and all(isinstance(x, str) for x in inputs):
        batches, tokens = [], []
        for start in range(0, len(inputs), batch_size):
            enc = tokenizer(list(inputs[start:start + batch_size]), padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            mask = enc.pop("attention_mask").bool()
            ids = enc.pop("input_ids")
            batches.append(TokenBatch(ids, mask, dict(enc)))
            tokens.extend(tokenizer.convert_ids_to_tokens(row[m].tolist()) for row, m in zip(ids, mask))
        return batches, tokens
    ids, tokens = [], []
    for x in inputs:
        if isinstance(x, str):
            if tokenizer is None:
                raise ValueError("string inputs need a tokenizer (a Hugging Face tokenizer or the study's Vocabulary)")
            x = tokenize(x)
        x = list(x)[:max_length] if max_length else list(x)
        if x and isinstance(x[0], str):
            if tokenizer is None:
                raise ValueError("token inputs need a vocabulary with encode() to map them to ids")
            ids.append(tokenizer.encode(x))
            tokens.append(x)
        else:
            ids.append([int(i) for i in x])
            tokens.append(tokenizer.decode(ids[-1]) if hasattr(tokenizer, "decode") and not
                          _is_hf_tokenizer(tokenizer) else [str(i) for i in ids[-1]])
    batches = []
    for start in range(0, len(ids), batch_size):
        b = collate(ids[start:start + batch_size], [0] * len(ids[start:start + batch_size]))
        b.ids, b.mask = adapter.pad_like_model(b.ids, b.mask)
        batches.append(b)
    return batches, tokens


def _encode_seq2seq(adapter, tokenizer, inputs, target, batch_size: int, max_length: int | None, max_new_tokens: int):
    """(batches, source tokens, target tokens) for an encoder-decoder: generated or teacher-forced targets."""
    if target is not None and len(target) != len(inputs):
        raise ValueError(f"{len(target)} targets for {len(inputs)} inputs")
    batches, src_tokens, tgt_tokens = [], [], []
    for start in range(0, len(inputs), batch_size):
        chunk = list(inputs[start:start + batch_size])
        gold = None if target is None else list(target[start:start + batch_size])
        if _is_hf_tokenizer(tokenizer):
            enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            src, src_mask = enc["input_ids"].to(adapter.device), enc["attention_mask"].bool().to(adapter.device)
            if gold is None:
                batch = adapter.generate(src, src_mask, max_new_tokens)
            else:
                labels = tokenizer(text_target=gold, padding=True, return_tensors="pt")
                tgt_out, tgt_mask = labels["input_ids"].to(src.device), labels["attention_mask"].bool().to(src.device)
                start_id = adapter.model.config.decoder_start_token_id
                tgt_in = torch.cat([torch.full_like(tgt_out[:, :1], start_id), tgt_out[:, :-1]], 1)
                batch = Seq2SeqBatch(src, src_mask, tgt_in, tgt_out, tgt_mask)
            src_tokens.extend(tokenizer.convert_ids_to_tokens(r[m].tolist()) for r, m in zip(batch.src, batch.src_mask))
            tgt_tokens.extend(tokenizer.convert_ids_to_tokens(r[m].tolist()) for r, m in zip(batch.tgt_out,
                                                                                            batch.tgt_mask))
        else:
            if tokenizer is None:
                raise ValueError("an encoder-decoder of the study needs its TokenVocabulary as the tokenizer")
            src_ids = [tokenizer.encode(tokenize(x) if isinstance(x, str) else list(x)) for x in chunk]
            if gold is None:
                b = collate_pairs(src_ids, [[0]] * len(src_ids)).to(adapter.device)
                tgt_ids = adapter.model.greedy(b.src, b.src_mask, max_len=max_new_tokens)
            else:
                tgt_ids = [tokenizer.encode(tokenize(y) if isinstance(y, str) else list(y)) for y in gold]
            batch = collate_pairs(src_ids, tgt_ids)
            src_tokens.extend(tokenizer.decode(s) for s in src_ids)
            tgt_tokens.extend(tokenizer.decode(t) + ["</s>"] for t in tgt_ids)
        batches.append(batch)
    return batches, src_tokens, tgt_tokens


def explain(model, tokenizer=None, inputs: Sequence | None = None, methods: Sequence[str] = ("attention",),
            target=None, *, batch_size: int = 16, max_length: int | None = None, max_new_tokens: int = 64,
            **options) -> dict[str, Explanation]:
    """``{method: Explanation}`` of ``model``'s outputs on ``inputs`` (see the module docstring)."""
    if inputs is None or isinstance(inputs, (str, bytes)) or len(inputs) == 0:
        raise ValueError("inputs must be a non-empty list of strings, token lists or id lists (wrap a single "
                         "sentence in a list)")
    methods = [methods] if isinstance(methods, str) else list(methods)
    _check_options(methods, options)
    adapter = as_adapter(model, tokenizer).eval()
    instances = {name: get_method(name, adapter, **options.get(name, {})) for name in methods}
    if adapter.family == "seq2seq":
        batches, tokens, target_tokens = _encode_seq2seq(adapter, tokenizer, inputs, target, batch_size, max_length,
                                                         max_new_tokens)
        return {name: attribute_batches(m, batches, tokens=tokens, target_tokens=target_tokens)
                for name, m in instances.items()}
    batches, tokens = _encode_classifier(adapter, tokenizer, inputs, batch_size, max_length)
    if target is None:                      # predicted once here, not once per method
        targets = [int(t) for b in batches for t in _classifier_targets(adapter, b.to(adapter.device), "predicted", 0)]
    elif isinstance(target, (int, np.integer)):
        targets = [int(target)] * len(inputs)
    else:
        targets = list(target)
        if len(targets) != len(inputs):
            raise ValueError(f"{len(targets)} targets for {len(inputs)} inputs")
    return {name: attribute_batches(m, batches, targets, tokens=tokens) for name, m in instances.items()}
