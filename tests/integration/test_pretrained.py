"""MiniLM from the offline cache: attention maps are real distributions, or a clear error.

Needs the MiniLM checkpoint in the data cache (``make test`` fetches it first).
"""

import pytest
import torch

from aine_lib.config import load_config
from aine_lib.models.pretrained import AttentionUnavailableError, attention_maps, load_minilm_classifier
from tests.conftest import REPO


@pytest.fixture(scope="module")
def root():
    return load_config(REPO / "configs/smoke.yaml").data_root


def test_eager_minilm_returns_six_layers_of_attention_distributions(root):
    torch.manual_seed(0)
    model, tokenizer = load_minilm_classifier(root, num_labels=2)
    model.eval()
    inputs = tokenizer(["a gorgeous, witty film", "dull"], padding=True, return_tensors="pt")
    maps = attention_maps(model, inputs)
    T = inputs["input_ids"].shape[1]
    assert len(maps) == 6 and all(m.shape == (2, 12, T, T) for m in maps)
    for m in maps:
        assert torch.allclose(m.sum(-1), torch.ones(2, 12, T), atol=1e-5)
        # keys that are padding get no attention
        assert torch.all(m[1, :, :, inputs["attention_mask"][1] == 0] < 1e-6)


def test_non_eager_attention_raises_a_clear_error(root):
    model, tokenizer = load_minilm_classifier(root, num_labels=2, attn_implementation="sdpa")
    inputs = tokenizer(["fine"], return_tensors="pt")
    with pytest.raises(AttentionUnavailableError, match="attn_implementation='eager'"):
        attention_maps(model.eval(), inputs)


def test_our_minilm_equals_hugging_faces_on_the_checkpoint(root):
    from aine_lib.data.pretrained import minilm_dir
    from aine_lib.models.transformer_encoder import TransformerClassifier

    torch.manual_seed(0)
    hf, tokenizer = load_minilm_classifier(root, num_labels=2)
    hf.eval()
    ours = TransformerClassifier.from_pretrained(minilm_dir(root), n_classes=2).eval()
    ours.load_bert_state_dict(hf.state_dict())      # the same (random) classifier head
    inputs = tokenizer(["a gorgeous, witty film", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = hf(**inputs).logits
        got = ours(inputs["input_ids"], inputs["attention_mask"].bool()).logits
    assert torch.allclose(got, expected, atol=1e-4)
