"""aine: attention is not explanation."""
__version__ = "0.1.0"
