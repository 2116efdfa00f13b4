"""Metrics: uncertainty (bootstrap), and later rank correlation, divergences, faithfulness."""
