"""The token budget per model call (``attribution.base.TOKENS_PER_CALL``) against the earlier fixed chunk sizes.

Explains ``--posts`` real 20News posts (128 wordpieces) and ``--sentences`` SST sentences with MiniLM (the
study's encoder with the checkpoint's weights, a seeded random head) by LOO, occlusion, LIME, KernelSHAP (100
samples) and integrated gradients (32 steps), once with the earlier settings (LOO in chunks of 512 variants,
occlusion 16 perturbations per call, LIME/SHAP 50, IG 64 interpolations per call whatever their length) and
once with the defaults (calls of at most 4,096 tokens; occlusion's length buckets are used in both). Prints
seconds per example, the speed-up and the largest score difference.

    python benchmarks/tokens_per_call.py [--config configs/smoke.yaml] [--posts 8] [--sentences 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from aine_lib.attribution import as_adapter, get_method
from aine_lib.config import load_config
from aine_lib.data import load_dataset
from aine_lib.data.pretrained import minilm_dir, minilm_tokenizer
from aine_lib.models.protocol import TokenBatch
from aine_lib.models.transformer_encoder import TransformerClassifier
from aine_lib.repro import seed_everything

UNLIMITED = 10 ** 9
METHODS = {  # name: (options, the earlier settings)
    "loo": ({}, {"chunk_size": 512, "tokens_per_call": UNLIMITED}),
    "occlusion": ({}, {"perturbations_per_eval": 16}),
    "lime": ({"n_samples": 100}, {"perturbations_per_eval": 50}),
    "kernel_shap": ({"n_samples": 100}, {"perturbations_per_eval": 50}),
    "integrated_gradients": ({"n_steps": 32}, {"tokens_per_call": UNLIMITED}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/smoke.yaml")
    parser.add_argument("--posts", type=int, default=8)
    parser.add_argument("--sentences", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    seed_everything(0)
    tokenizer = minilm_tokenizer(cfg.data_root)
    tokenizer.enable_truncation(128)
    tokenizer.enable_padding()
    model = TransformerClassifier.from_pretrained(minilm_dir(cfg.data_root), n_classes=2).eval()
    adapter = as_adapter(model, None)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, n in (("newsgroups", args.posts), ("sst", args.sentences)):
        enc = tokenizer.encode_batch(list(load_dataset(name, cfg).test["text"][:n]))
        batch = TokenBatch(torch.tensor([e.ids for e in enc]), torch.tensor([e.attention_mask for e in enc]).bool(), {})
        target = torch.zeros(n, dtype=torch.long)
        for method, (options, before) in METHODS.items():
            times, scores = [], []
            for extra in (before, {}):
                explainer = get_method(method, adapter, **options, **extra)
                started = time.perf_counter()
                scores.append(explainer.attribute(batch, target).detach())
                times.append((time.perf_counter() - started) / n)
            diff = (scores[0] - scores[1]).abs().nan_to_num().max().item()
            print(f"{name} {method}: before {times[0]:.3f} s/example, now {times[1]:.3f}: "
                  f"{times[0] / times[1]:.2f}x; max difference {diff:.1e}", flush=True)


if __name__ == "__main__":
    main()
