"""Adapters for the study's own models (see :mod:`aine_lib.models.protocol`).

* :class:`RNNAdapter` -- the BiLSTM / CNN / Average :class:`~aine_lib.models.rnn_attention.AttentionClassifier`
  (one attention distribution over the inputs; attention can be detached for Jain & Wallace's gradients);
* :class:`EncoderAdapter` -- :class:`~aine_lib.models.transformer_encoder.TransformerClassifier`
  (MiniLM's weights or a from-scratch encoder; [CLS] at position 0);
* :class:`Seq2SeqTransformerAdapter` -- :class:`~aine_lib.models.transformer.Seq2SeqTransformer`.
"""

from __future__ import annotations

import torch

from aine_lib.models.protocol import (ClassifierAdapter, ClassifierForward, Seq2SeqAdapter, Seq2SeqForward,
                                      TokenBatch)
from aine_lib.models.rnn_attention import AttentionClassifier
from aine_lib.models.seq2seq_training import Seq2SeqBatch
from aine_lib.models.transformer import PAD, Seq2SeqTransformer
from aine_lib.models.transformer_encoder import TransformerClassifier


class RNNAdapter(ClassifierAdapter):
    def __init__(self, model: AttentionClassifier, name: str | None = None):
        super().__init__(model, name or f"{model.cfg.encoder}/{model.cfg.attention}")
        self.pad_id = getattr(model.cfg, "pad_id", 0)

    def embed(self, batch) -> torch.Tensor:
        return self.model.embed(batch.ids)

    def logits(self, batch, embeddings=None, detach_attention=False) -> torch.Tensor:
        return self.model(batch.ids, batch.mask, embeddings=embeddings, detach_attention=detach_attention).logits

    def attention_weights(self, batch) -> torch.Tensor:
        return self.model(batch.ids, batch.mask).attention


class EncoderAdapter(ClassifierAdapter):
    has_norm_terms = True

    def __init__(self, model: TransformerClassifier, name: str | None = None):
        super().__init__(model, name or "TransformerClassifier")
        cfg = model.cfg
        self.n_layers, self.n_heads = cfg.layers, cfg.heads
        self.pad_id, self.mask_id = cfg.pad_id, cfg.mask_id
        self.special_ids = cfg.special_ids

    def embed(self, batch) -> torch.Tensor:
        return self.model.embed(batch.ids)

    def logits(self, batch, embeddings=None, detach_attention=False) -> torch.Tensor:
        if detach_attention:
            raise self._not("gradients with attention detached", "use gradient_x_input for Transformers")
        return self.model(batch.ids, batch.mask, embeddings=embeddings).logits

    def forward(self, batch) -> ClassifierForward:
        out = self.model(batch.ids, batch.mask)
        return ClassifierForward(out.logits, out.attentions, out.hidden_states)

    def norm_terms(self, batch, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(batch.ids, batch.mask)
        cfg = self.model.cfg
        w_o = self.model.layers[layer].attention.output.weight                  # [d, h*dh]
        w_o = w_o.view(cfg.hidden, cfg.heads, cfg.head_dim).permute(1, 2, 0)     # [h, dh, d]
        return out.attentions[layer], torch.einsum("bhtk,hkd->bhtd", out.values[layer], w_o)


class Seq2SeqTransformerAdapter(Seq2SeqAdapter):
    has_norm_terms = True

    def __init__(self, model: Seq2SeqTransformer, name: str | None = None):
        super().__init__(model, name or "Seq2SeqTransformer")
        cfg = model.cfg
        self.encoder_layers, self.decoder_layers, self.n_heads = cfg.encoder_layers, cfg.decoder_layers, cfg.heads

    def embed(self, batch: Seq2SeqBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.embed_source(batch.src), self.model.embed_target(batch.tgt_in)

    def logits(self, batch: Seq2SeqBatch, src_embeddings=None, tgt_embeddings=None) -> torch.Tensor:
        return self.model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_mask, src_embeddings=src_embeddings,
                          tgt_embeddings=tgt_embeddings).logits

    def target_log_probs(self, batch, src_embeddings=None, tgt_embeddings=None) -> torch.Tensor:
        logits = self.logits(batch, src_embeddings, tgt_embeddings)
        logp = torch.log_softmax(logits, -1).gather(-1, batch.tgt_out.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return logp * (batch.tgt_out != PAD)

    def forward(self, batch: Seq2SeqBatch) -> Seq2SeqForward:
        out = self.model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_mask)
        return Seq2SeqForward(out.logits, out.attentions)

    def norm_terms(self, batch: Seq2SeqBatch, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_mask)
        mha = self.model.decoder[layer].cross_attention
        d = self.model.cfg.d_model
        w_o = mha.output.weight.view(d, mha.heads, mha.d_head).permute(1, 2, 0)   # [h, dh, d]
        return out.attentions["cross"][layer], torch.einsum("bhsk,hkd->bhsd", out.values["cross"][layer], w_o)


def native_adapter(model) -> ClassifierAdapter | Seq2SeqAdapter | None:
    """The adapter of one of the study's own models, or None if ``model`` is not one."""
    if isinstance(model, AttentionClassifier):
        return RNNAdapter(model)
    if isinstance(model, TransformerClassifier):
        return EncoderAdapter(model)
    if isinstance(model, Seq2SeqTransformer):
        return Seq2SeqTransformerAdapter(model)
    return None


__all__ = ["EncoderAdapter", "RNNAdapter", "Seq2SeqTransformerAdapter", "TokenBatch", "native_adapter"]
