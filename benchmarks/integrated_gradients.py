"""Integrated gradients on MiniLM: aine's method against Captum's ``LayerIntegratedGradients``, equal settings.

Both explain the predicted class's probability of the Hugging Face ``BertForSequenceClassification`` (MiniLM,
eager attention, the classification head seeded) on the same ``--examples`` real sentiment sentences in
batches of ``--batch-size`` (padded to the longest sentence of each batch, as a user's batch is), from the
same reference input (real tokens replaced by [PAD], [CLS]/[SEP] kept), Gauss-Legendre with ``--steps`` steps
and 64 interpolations per model call. Captum runs on the word-embedding layer
(``model.bert.embeddings.word_embeddings``); aine's method feeds the embeddings through its Hugging Face
adapter and sorts each batch into length buckets, so no model call runs on padding. Prints both times, the
speed-up (target: >= 2x) and the largest difference of the per-token scores (equal attributions).

    python benchmarks/integrated_gradients.py [--config configs/smoke.yaml] [--examples 64] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients

from aine_lib.attribution import as_adapter, get_method
from aine_lib.config import load_config
from aine_lib.data import load_dataset
from aine_lib.models.pretrained import load_minilm_classifier
from aine_lib.models.protocol import TokenBatch
from aine_lib.repro import seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/smoke.yaml")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    cfg = load_config(args.config)
    seed_everything(0)
    model, tokenizer = load_minilm_classifier(cfg.data_root)
    model.eval()
    texts = list(load_dataset("sst", cfg).test["text"][: args.examples])
    adapter = as_adapter(model, tokenizer)
    ours = get_method("integrated_gradients", adapter, n_steps=args.steps, internal_batch_size=64)

    def probability(ids, mask, types):
        return torch.softmax(model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits, -1)

    layer_ig = LayerIntegratedGradients(probability, model.bert.embeddings.word_embeddings)
    t_ours = t_captum = 0.0
    worst = 0.0
    lengths = []
    for start in range(0, len(texts), args.batch_size):
        enc = tokenizer(texts[start:start + args.batch_size], padding=True, truncation=True, max_length=128,
                        return_tensors="pt")
        batch = TokenBatch(enc["input_ids"], enc["attention_mask"].bool(), {"token_type_ids": enc["token_type_ids"]})
        lengths.extend(batch.mask.sum(1).tolist())
        with torch.no_grad():
            target = adapter.logits(batch).argmax(-1)
        started = time.perf_counter()
        a = ours.attribute(batch, target)
        t_ours += time.perf_counter() - started
        reference = adapter.reference_ids(batch.ids, batch.mask)
        started = time.perf_counter()
        b = layer_ig.attribute(batch.ids, baselines=reference, target=target, n_steps=args.steps,
                               additional_forward_args=(enc["attention_mask"], enc["token_type_ids"]),
                               internal_batch_size=64).sum(-1)
        t_captum += time.perf_counter() - started
        worst = max(worst, float((a - b.detach() * batch.mask).abs().max()))
    print(f"integrated gradients on MiniLM, {len(texts)} sentences (wordpieces: median {int(np.median(lengths))}, "
          f"max {max(lengths)}), batches of {args.batch_size}, {args.steps} steps, threads {torch.get_num_threads()}")
    print(f"aine: {t_ours:.1f} s; Captum LayerIntegratedGradients: {t_captum:.1f} s; speed-up {t_captum / t_ours:.2f}x; "
          f"max |difference| {worst:.2e}")


if __name__ == "__main__":
    main()
