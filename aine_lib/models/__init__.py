"""Models whose internals (attention above all) are named, first-class outputs.

* ``rnn_attention``: Jain & Wallace's classifiers -- BiLSTM / CNN / Average
  encoders with additive or scaled-dot attention and a linear decoder. Each
  stage (``embed``, ``encode``, ``attend``, ``decode``) is a method, and
  ``forward`` accepts replacement embeddings or attention, so gradients,
  permutation, adversarial attention and erasure all act on the same model.
* ``training``: batching, the training loop (model selection on dev), and the
  parameter-keyed model cache.
"""
