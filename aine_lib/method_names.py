"""Names of the attribution methods, importable without torch or Captum (the config validates against them).

The classes behind the names live in :mod:`aine_lib.attribution`, whose registry is checked against these
tuples when it is imported.
"""

#: RNN/CNN/Average models only (they read the single attention distribution or detach it).
RNN_METHODS = ("attention", "gradient")
#: Transformer models only (they read attention per layer and head).
TRANSFORMER_METHODS = ("attention_cls_last", "attention_cls_mean", "attention_layer_head", "rollout", "flow",
                       "norm", "grad_attention", "chefer")
#: Any classifier (and, where the method is defined for them, encoder-decoders).
GENERIC_METHODS = ("loo", "gradient_x_input", "integrated_gradients", "deeplift", "occlusion", "lime",
                   "kernel_shap", "random")
#: Encoder-decoders' named variants of ``attention`` (cross-attention of each target step).
SEQ2SEQ_METHODS = ("cross_attention", "cross_attention_mean")
