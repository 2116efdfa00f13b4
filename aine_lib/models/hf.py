"""Adapters for any Hugging Face classifier or encoder-decoder, working on the module itself through hooks.

No weights are copied: :class:`HFClassifierAdapter` wraps an
``AutoModelForSequenceClassification`` (BERT, DistilBERT, RoBERTa, XLNet, ...)
and :class:`HFSeq2SeqAdapter` an ``AutoModelForSeq2SeqLM`` (Marian, T5, BART,
...). Replacement input embeddings (for gradients, integrated gradients,
DeepLIFT, LIME, SHAP, occlusion) are swapped in with a forward hook on the
model's input-embedding module, so whatever the model adds after it (position
ids computed from the ids, embedding scale, token types) is unchanged.

Attention maps need the eager attention implementation (SDPA and flash kernels
compute none): an adapter refuses a model loaded otherwise and says how to
load it. Norm-based weights (Kobayashi et al. 2020) need each head's value
vectors and output projection; they are read with hooks on the modules named
in :data:`NORM_MODULES` and refused for other architectures.
"""

from __future__ import annotations

import contextlib
from pathlib import PurePath
from typing import Iterator

import torch
from torch import nn

from aine_lib.models.protocol import (AttentionUnavailableError, ClassifierAdapter, ClassifierForward,
                                      MethodNotApplicable, Seq2SeqAdapter, Seq2SeqForward)
from aine_lib.models.seq2seq_training import Seq2SeqBatch

#: (value projection, output projection) of layer ``{i}``'s self-attention (classifiers, relative to
#: ``model.base_model``) or cross-attention (encoder-decoders, relative to ``model.get_decoder()``).
NORM_MODULES: dict[str, tuple[str, str]] = {
    **{t: ("encoder.layer.{i}.attention.self.value", "encoder.layer.{i}.attention.output.dense")
       for t in ("bert", "roberta", "xlm-roberta", "electra", "camembert")},
    "distilbert": ("transformer.layer.{i}.attention.v_lin", "transformer.layer.{i}.attention.out_lin"),
    **{t: ("layers.{i}.encoder_attn.v_proj", "layers.{i}.encoder_attn.out_proj")
       for t in ("marian", "bart", "mbart", "pegasus", "m2m_100")},
    **{t: ("block.{i}.layer.1.EncDecAttention.v", "block.{i}.layer.1.EncDecAttention.o") for t in ("t5", "mt5")},
}


def _model_name(model) -> str:
    """The checkpoint's folder or hub name (never a whole local path), else the class name."""
    path = PurePath(str(getattr(model.config, "name_or_path", "") or ""))
    if path.name in ("model", "models", "checkpoint", "final") and path.parent.name:
        path = path.parent                    # a package's generic "model/" folder: its parent names it
    return path.name or type(model).__name__


def is_hf_model(model) -> bool:
    return hasattr(model, "config") and hasattr(model.config, "model_type") and hasattr(model, "get_input_embeddings")


def _require_eager(model) -> None:
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in (None, "eager"):
        raise AttentionUnavailableError(
            f"{type(model).__name__} uses attn_implementation={impl!r}, which computes no attention weights; "
            "load it with from_pretrained(..., attn_implementation='eager') (or set "
            "model.config._attn_implementation = 'eager' before explaining)")


def _attentions(out, key: str) -> tuple[torch.Tensor, ...]:
    maps = getattr(out, key, None)
    if not maps or any(a is None for a in maps):
        raise AttentionUnavailableError(f"the model returned no {key}; load it with attn_implementation='eager'")
    return tuple(maps)


class _EmbeddingSwap:
    """Forward hooks on the input-embedding modules that replace their outputs, in call order."""

    def __init__(self, modules: list[nn.Module], time_major: bool = False):
        self.modules = list({id(m): m for m in modules}.values())
        self.time_major = time_major          # XLNet embeds [T, B] ids: replacements are transposed to match

    @contextlib.contextmanager
    def replacing(self, replacements: list[torch.Tensor | None]) -> Iterator[None]:
        if all(r is None for r in replacements):
            yield
            return
        queue = list(replacements)

        def hook(module, args, output):
            if not queue:
                raise RuntimeError("the input-embedding module ran more often than expected; this architecture "
                                   "is not supported by the embedding swap")
            r = queue.pop(0)
            if r is None:
                return output
            if self.time_major:
                r = r.transpose(0, 1)
            if r.shape[:-1] != output.shape[:-1]:
                raise ValueError(f"replacement embeddings {tuple(r.shape)} do not match the model's "
                                 f"{tuple(output.shape)}")
            return r

        handles = [m.register_forward_hook(hook) for m in self.modules]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


def _module(root: nn.Module, path: str) -> nn.Module:
    try:
        return root.get_submodule(path)
    except AttributeError:
        raise MethodNotApplicable(f"no module {path!r} in {type(root).__name__}") from None


def _value_terms(model_type: str, root: nn.Module, layer: int, n_layers: int, heads: int, run) -> torch.Tensor:
    """``f [B, H, K, d]``: each key's value vector through its head's share of the output projection."""
    if model_type not in NORM_MODULES:
        raise MethodNotApplicable(f"norm-based weights need the value and output projections, which aine knows "
                                  f"for {sorted(NORM_MODULES)}, not {model_type!r}")
    i = layer % n_layers
    value_path, output_path = (p.format(i=i) for p in NORM_MODULES[model_type])
    captured = []
    handle = _module(root, value_path).register_forward_hook(lambda m, a, out: captured.append(out))
    try:
        run()
    finally:
        handle.remove()
    v = captured[-1]                                                     # [B, K, H*dh]
    B, K, width = v.shape
    v = v.view(B, K, heads, width // heads).transpose(1, 2)              # [B, H, K, dh]
    w_o = _module(root, output_path).weight                              # [d, H*dh]
    w_o = w_o.view(w_o.shape[0], heads, width // heads).permute(1, 2, 0)  # [H, dh, d]
    return torch.einsum("bhkc,hcd->bhkd", v, w_o)


class HFClassifierAdapter(ClassifierAdapter):
    """Any ``AutoModelForSequenceClassification`` with eager attention."""

    def __init__(self, model, tokenizer=None, name: str | None = None):
        super().__init__(model, name or _model_name(model))
        cfg = model.config
        self.tokenizer = tokenizer
        self.model_type = cfg.model_type
        self.n_layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
        self.n_heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None)
        self.pad_id = cfg.pad_token_id if cfg.pad_token_id is not None else 0
        self.mask_id = getattr(tokenizer, "mask_token_id", None)
        if tokenizer is not None:
            # [UNK] and [MASK] stand for words: only the structural tokens ([CLS], [SEP], <s>, </s>) are special
            special = set(tokenizer.all_special_ids) - {self.pad_id, tokenizer.unk_token_id, self.mask_id}
        else:
            special = {getattr(cfg, k) for k in ("bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id")
                       if getattr(cfg, k, None) is not None}
        self.special_ids = tuple(sorted(special))
        self.padding_side = getattr(tokenizer, "padding_side", None) or ("left" if cfg.model_type == "xlnet"
                                                                          else "right")
        self._swap = _EmbeddingSwap([model.get_input_embeddings()], time_major=cfg.model_type == "xlnet")
        self.has_norm_terms = cfg.model_type in NORM_MODULES
        self.attention_has_gradient = cfg.model_type != "xlnet"      # XLNet returns permuted copies of its maps

    def readout_positions(self, batch) -> torch.Tensor:
        B, T = batch.ids.shape
        if getattr(self.model.config, "summary_type", "first") == "last":      # XLNet reads its last position
            return torch.full((B,), T - 1, dtype=torch.long, device=batch.ids.device)
        return torch.zeros(B, dtype=torch.long, device=batch.ids.device)

    def _inputs(self, batch) -> dict:
        return {"input_ids": batch.ids, "attention_mask": batch.mask.long(), **getattr(batch, "extra", {})}

    def embed(self, batch) -> torch.Tensor:
        return self.model.get_input_embeddings()(batch.ids)

    def logits(self, batch, embeddings=None, detach_attention=False) -> torch.Tensor:
        if detach_attention:
            raise self._not("gradients with attention detached", "use gradient_x_input for Transformers")
        with self._swap.replacing([embeddings]):
            return self.model(**self._inputs(batch)).logits

    def forward(self, batch) -> ClassifierForward:
        _require_eager(self.model)
        out = self.model(**self._inputs(batch), output_attentions=True, output_hidden_states=True)
        return ClassifierForward(out.logits, _attentions(out, "attentions"), tuple(out.hidden_states or ()))

    def norm_terms(self, batch, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        _require_eager(self.model)
        outs = []
        f = _value_terms(self.model_type, self.model.base_model, layer, self.n_layers, self.n_heads,
                         lambda: outs.append(self.model(**self._inputs(batch), output_attentions=True)))
        return _attentions(outs[-1], "attentions")[layer], f


class HFSeq2SeqAdapter(Seq2SeqAdapter):
    """Any ``AutoModelForSeq2SeqLM`` with eager attention, teacher-forced on a :class:`Seq2SeqBatch`."""

    def __init__(self, model, tokenizer=None, name: str | None = None):
        super().__init__(model, name or _model_name(model))
        cfg = model.config
        self.tokenizer = tokenizer
        self.model_type = cfg.model_type
        self.encoder_layers = getattr(cfg, "encoder_layers", None) or cfg.num_layers
        self.decoder_layers = getattr(cfg, "decoder_layers", None) or getattr(cfg, "num_decoder_layers", None) \
            or cfg.num_layers
        self.n_heads = getattr(cfg, "decoder_attention_heads", None) or cfg.num_heads
        self.pad_id = cfg.pad_token_id
        self.eos_id = cfg.eos_token_id
        self.has_norm_terms = cfg.model_type in NORM_MODULES
        self._swap = _EmbeddingSwap([model.get_encoder().get_input_embeddings(),
                                     model.get_decoder().get_input_embeddings()])

    def _inputs(self, batch: Seq2SeqBatch) -> dict:
        return {"input_ids": batch.src, "attention_mask": batch.src_mask.long(), "decoder_input_ids": batch.tgt_in,
                "decoder_attention_mask": batch.tgt_mask.long()}

    def embed(self, batch: Seq2SeqBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.model.get_encoder().get_input_embeddings()(batch.src),
                self.model.get_decoder().get_input_embeddings()(batch.tgt_in))

    def logits(self, batch: Seq2SeqBatch, src_embeddings=None, tgt_embeddings=None) -> torch.Tensor:
        with self._swap.replacing([src_embeddings, tgt_embeddings]):
            return self.model(**self._inputs(batch)).logits

    def forward(self, batch: Seq2SeqBatch) -> Seq2SeqForward:
        _require_eager(self.model)
        out = self.model(**self._inputs(batch), output_attentions=True)
        return Seq2SeqForward(out.logits, {"encoder_self": _attentions(out, "encoder_attentions"),
                                           "decoder_self": _attentions(out, "decoder_attentions"),
                                           "cross": _attentions(out, "cross_attentions")})

    def norm_terms(self, batch: Seq2SeqBatch, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        _require_eager(self.model)
        outs = []
        f = _value_terms(self.model_type, self.model.get_decoder(), layer, self.decoder_layers, self.n_heads,
                         lambda: outs.append(self.model(**self._inputs(batch), output_attentions=True)))
        return _attentions(outs[-1], "cross_attentions")[layer], f

    @torch.no_grad()
    def generate(self, src: torch.Tensor, src_mask: torch.Tensor, max_new_tokens: int = 64) -> Seq2SeqBatch:
        """Greedy decoding into a teacher-forcing batch: steps up to and including the first EOS are real."""
        seqs = self.model.generate(input_ids=src, attention_mask=src_mask.long(), max_new_tokens=max_new_tokens,
                                   do_sample=False, num_beams=1)
        tgt_in, tgt_out = seqs[:, :-1], seqs[:, 1:]
        eos = tgt_out == self.eos_id
        tgt_mask = (eos.long().cumsum(1) - eos.long()) == 0
        return Seq2SeqBatch(src, src_mask, tgt_in, tgt_out, tgt_mask)


def hf_adapter(model, tokenizer=None) -> HFClassifierAdapter | HFSeq2SeqAdapter:
    """The adapter of a Hugging Face model (an encoder-decoder or a sequence classifier)."""
    if getattr(model.config, "is_encoder_decoder", False):
        return HFSeq2SeqAdapter(model, tokenizer)
    return HFClassifierAdapter(model, tokenizer)
