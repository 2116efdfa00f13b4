"""The real MiniLM checkpoint, two ways: every explanation method agrees between Hugging Face's model and ours.

``as_adapter(hf_model, tokenizer)`` reads the Hugging Face module through hooks;
``as_adapter(TransformerClassifier)`` reads our from-scratch encoder. With the same weights (classifier head
included), the same batch and the same seeds, every classifier method must give the same scores within 1e-5:
a hook that reads the wrong tensor, a readout or reference that differs, or a mask handled differently shows.

Needs the MiniLM folder of the smoke data (``aine fetch --config configs/smoke.yaml``); skipped without it.
"""

from __future__ import annotations

import pytest
import torch

from aine_lib.attribution import as_adapter, get_method
from aine_lib.models.protocol import TokenBatch
from tests.conftest import REPO

SENTENCES = ["a gorgeous, witty film", "dull and far too long", "not bad at all"]
# every classifier method except 'gradient' (it detaches a single attention distribution; MiniLM has none)
METHODS = ("attention", "attention_cls_last", "attention_cls_mean", "attention_layer_head", "rollout", "flow",
           "norm", "grad_attention", "chefer", "gradient_x_input", "integrated_gradients", "deeplift", "occlusion",
           "lime", "kernel_shap", "loo", "random")
OPTIONS = {"integrated_gradients": {"n_steps": 8}, "lime": {"n_samples": 32, "seed": 3},
           "kernel_shap": {"n_samples": 32, "seed": 3}}


@pytest.fixture(scope="module")
def both():
    """(hf adapter, native adapter, batch, target): the same MiniLM weights and a seeded classifier head."""
    from aine_lib.config import load_config

    root = load_config(REPO / "configs/smoke.yaml").data_root
    folder = root / "minilm-l6-v2" / "model"
    if not ((folder / "config.json").exists() and (folder / "model.safetensors").exists()):
        pytest.skip(f"MiniLM is not in {folder}: run `aine fetch --config configs/smoke.yaml`")
    from aine_lib.data.pretrained import minilm_dir
    from aine_lib.models.pretrained import load_minilm_classifier
    from aine_lib.models.transformer_encoder import TransformerClassifier

    torch.manual_seed(0)
    hf, tokenizer = load_minilm_classifier(root, num_labels=2)
    hf.eval()
    ours = TransformerClassifier.from_pretrained(minilm_dir(root), n_classes=2)
    ours.load_bert_state_dict(hf.state_dict())          # copies the (random) classifier head too
    ours.eval()
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    mask = enc.pop("attention_mask").bool()
    batch = TokenBatch(enc.pop("input_ids"), mask, dict(enc))          # extra: token_type_ids (HF reads them)
    with torch.no_grad():
        logits = hf(input_ids=batch.ids, attention_mask=mask.long(), **batch.extra).logits
    assert torch.allclose(as_adapter(ours).logits(batch), logits, atol=1e-4)
    return as_adapter(hf, tokenizer), as_adapter(ours), batch, logits.argmax(-1)


def test_both_adapters_see_the_same_specials_and_reference(both):
    hf, ours, batch, _ = both
    special = hf.special_mask(batch.ids)
    assert torch.equal(special, ours.special_mask(batch.ids))
    assert int(special.sum()) == 2 * len(SENTENCES)                 # [CLS] and [SEP] of each sentence
    assert torch.equal(hf.reference_ids(batch.ids, batch.mask), ours.reference_ids(batch.ids, batch.mask))


@pytest.mark.parametrize("name", METHODS)
def test_hugging_face_and_native_minilm_give_the_same_scores(both, name):
    hf, ours, batch, target = both
    got = get_method(name, hf, **OPTIONS.get(name, {})).attribute(batch, target)
    expected = get_method(name, ours, **OPTIONS.get(name, {})).attribute(batch, target)
    assert got.shape == batch.ids.shape and torch.isfinite(got).all()
    assert float(got[batch.mask].abs().max()) > 1e-4                 # real scores, not an agreement of zeros
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), (name, float((got - expected).abs().max()))
