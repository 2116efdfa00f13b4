"""Time per example of every explanation method on MiniLM (and the small scratch Transformer).

Prints one line per method: seconds per example on SST-like sentences
(wordpieces, default 16 examples), and the ratio of our batched Integrated
Gradients (all examples of a batch in one Captum call) to Captum's usual
one-example-at-a-time call, with the largest difference between the two, and
of its default chunking of the interpolated inputs (``internal_batch_size``)
to one pass over all of them.

    python benchmarks/attribution.py [--device auto] [--examples 16] [--length 28] [--lime-samples 200]

The MiniLM weights come from the offline data cache (``aine fetch``); the
classification head is random (timing does not depend on it).
"""

from __future__ import annotations

import argparse
import time

import torch

from aine_lib.attribution import get_method
from aine_lib.experiments.transformers import METHODS
from aine_lib.models.training import collate
from aine_lib.repro import get_device, seed_everything


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(device, fn):
    """``(fn(), seconds)``, with the GPU's queue drained before and after."""
    _sync(device)
    started = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - started


def main() -> None:
    from aine_lib.config import load_config
    from aine_lib.data.pretrained import minilm_dir
    from aine_lib.models.transformer_encoder import TransformerClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--length", type=int, default=28, help="wordpieces per example, [CLS] and [SEP] included")
    parser.add_argument("--lime-samples", type=int, default=200)
    parser.add_argument("--ig-steps", type=int, default=32)
    parser.add_argument("--config", default="configs/smoke.yaml", help="where the data cache is")
    args = parser.parse_args()
    device = get_device(args.device)
    seed_everything(0)
    root = load_config(args.config).data_root
    model = TransformerClassifier.from_pretrained(minilm_dir(root), n_classes=2).to(device).eval()
    cfg = model.cfg
    gen = torch.Generator().manual_seed(0)
    ids = [[cfg.cls_id, *torch.randint(2000, 20000, (args.length - 2,), generator=gen).tolist(), cfg.sep_id]
           for _ in range(args.examples)]
    batch = collate(ids, [0] * len(ids)).to(device)
    with torch.no_grad():
        target = model(batch.ids, batch.mask).logits.argmax(-1)
    print(f"device {device}, threads {torch.get_num_threads()}, {args.examples} examples of {args.length} wordpieces")
    kwargs = {"integrated_gradients": {"n_steps": args.ig_steps}, "lime": {"n_samples": args.lime_samples},
              "kernel_shap": {"n_samples": args.lime_samples}}
    for name in METHODS:
        method = get_method(name, model, **kwargs.get(name, {}))
        _, seconds = _timed(device, lambda: method.attribute(batch, target))
        per_example = seconds / args.examples
        print(f"{name:22s} {per_example * 1e3:9.1f} ms/example")

    # batched IG vs Captum's one-example call, same steps
    ig = get_method("integrated_gradients", model, n_steps=args.ig_steps)
    batched, t_batched = _timed(device, lambda: ig.attribute(batch, target))
    singles, t_single = _timed(device, lambda: [ig.attribute(collate([ids[i]], [0]).to(device), target[i:i + 1])
                                                for i in range(len(ids))])
    diff = max(float((batched[i, : len(ids[i])] - singles[i][0]).abs().max()) for i in range(len(ids)))
    print(f"integrated_gradients: batched {t_batched:.2f} s, one example per call {t_single:.2f} s, "
          f"speed-up {t_single / t_batched:.1f}x, max |difference| {diff:.2e}")

    # the interpolated inputs in chunks of internal_batch_size (the default) vs all B x n_steps in one pass
    whole = get_method("integrated_gradients", model, n_steps=args.ig_steps, internal_batch_size=None)
    one_pass, t_whole = _timed(device, lambda: whole.attribute(batch, target))
    diff = float((one_pass - batched).abs().max())
    print(f"integrated_gradients: chunks of {ig.internal_batch_size} interpolations {t_batched:.2f} s, "
          f"all {args.examples * args.ig_steps} in one pass {t_whole:.2f} s, speed-up {t_whole / t_batched:.2f}x, "
          f"max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
