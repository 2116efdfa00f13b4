"""aine: attention is not explanation.

>>> from aine_lib import explain
>>> explanations = explain(model, tokenizer, ["a sentence"], methods=["attention", "integrated_gradients"])

Nothing heavy is imported until ``explain`` or ``Explanation`` is first used.
"""
__version__ = "0.1.0"
__all__ = ["Explanation", "explain"]


def __getattr__(name: str):
    if name in __all__:
        from aine_lib import attribution

        return getattr(attribution, name)
    raise AttributeError(f"module 'aine_lib' has no attribute {name!r}")
