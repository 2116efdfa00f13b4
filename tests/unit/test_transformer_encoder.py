"""The readable BERT: equal to Hugging Face's on the same weights, and its attention exposed correctly."""

from __future__ import annotations

import pytest
import torch

from aine_lib.config import ConfigError
from aine_lib.models.transformer_encoder import EncoderConfig, TransformerClassifier


def tiny_cfg(**kw) -> EncoderConfig:
    return EncoderConfig(**({"vocab_size": 50, "hidden": 16, "layers": 2, "heads": 4, "intermediate": 32,
                             "max_positions": 20, "dropout": 0.0, "n_classes": 3} | kw))


def ragged(B=3, T=7, vocab=50, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (B, T), generator=gen)
    lengths = torch.tensor([T, 4, 2][:B])
    mask = torch.arange(T)[None] < lengths[:, None]
    return ids.masked_fill(~mask, 0), mask


def test_logits_equal_hugging_face_bert_on_the_same_weights():
    from transformers import BertConfig, BertForSequenceClassification

    hf_cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=32, max_position_embeddings=20, num_labels=3, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, attn_implementation="eager")
    torch.manual_seed(0)
    hf = BertForSequenceClassification(hf_cfg).eval()
    ours = TransformerClassifier(tiny_cfg()).eval()
    ours.load_bert_state_dict(hf.state_dict())
    ids, mask = ragged()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask.long(), output_attentions=True)
        got = ours(ids, mask)
    assert torch.allclose(got.logits, expected.logits, atol=1e-5)
    for a, b in zip(got.attentions, expected.attentions):
        real = mask[:, None, :, None] & mask[:, None, None, :]
        assert torch.allclose(a[real.expand_as(a)], b[real.expand_as(b)], atol=1e-5)


def test_attention_rows_sum_to_one_over_real_keys_and_padding_changes_nothing():
    torch.manual_seed(1)
    model = TransformerClassifier(tiny_cfg()).eval()
    ids, mask = ragged()
    with torch.no_grad():
        out = model(ids, mask)
        alone = model(ids[1:2, :4], mask[1:2, :4])
    for a in out.attentions:
        assert a.shape == (3, 4, 7, 7)
        assert torch.allclose(a.sum(-1), torch.ones(3, 4, 7), atol=1e-6)
        assert bool((a.masked_select(~mask[:, None, None, :].expand_as(a)) == 0).all())
    assert torch.allclose(out.logits[1], alone.logits[0], atol=1e-5)
    assert len(out.hidden_states) == 3 and out.values[0].shape == (3, 4, 7, 4)


def test_head_mask_of_ones_changes_nothing_and_zeros_remove_the_heads():
    torch.manual_seed(2)
    model = TransformerClassifier(tiny_cfg()).eval()
    ids, mask = ragged()
    with torch.no_grad():
        base = model(ids, mask).logits
        ones = model(ids, mask, head_mask=torch.ones(2, 4)).logits
        hm = torch.ones(2, 4)
        hm[0, 1] = 0
        ablated = model(ids, mask, head_mask=hm).logits
    assert torch.equal(base, ones)
    assert not torch.allclose(base, ablated)
    with pytest.raises(ValueError, match="head_mask"):
        model(ids, mask, head_mask=torch.ones(4, 2))


def test_bad_configs_and_inputs_are_refused():
    with pytest.raises(ConfigError, match="divisible"):
        tiny_cfg(hidden=18)
    model = TransformerClassifier(tiny_cfg())
    ids, mask = ragged()
    with pytest.raises(ValueError, match="bool"):
        model(ids, mask.long())
    with pytest.raises(ValueError, match="max_positions"):
        model(torch.ones(1, 25, dtype=torch.long), torch.ones(1, 25, dtype=torch.bool))
    with pytest.raises(ValueError, match="lacks"):
        model.load_bert_state_dict({})
