"""Figures, one module per topic: ``f(df) -> Figure``. They draw tidy DataFrames; they never compute or save.

``from aine_lib.report import plots`` then ``plots.tau_histograms(...)``: every figure function is re-exported here.
Importing the package selects the non-interactive Agg backend and a fixed style (font, sizes, DPI; see
:mod:`~aine_lib.report.plots.style`) so a rebuild produces the same bytes.
"""

# style first: it selects the Agg backend before any other module imports pyplot
from aine_lib.report.plots.style import STYLE, apply_style

# isort: split
from aine_lib.report.plots.datasets import length_histograms
from aine_lib.report.plots.rnn import (performance_points, tau_histograms, difference_densities, permutation_violins,
                                       adversarial_scatter, uniform_baseline_points, jsd_densities, tradeoff_curves,
                                       diagnostic_points, single_erasure_scatter, erasure_boxplots)
from aine_lib.report.plots.transformers import (attribution_heatmaps, faithfulness_points, comprehensiveness_curves,
                                                layer_head_heatmap, agreement_matrix, plausibility_points,
                                                NEGLIGIBLE_SCORE)
from aine_lib.report.plots.seq2seq import (training_curves, aer_points, alignment_maps, decay_curves, erasure_bars,
                                           peakedness_points)
from aine_lib.report.plots.internals import (head_importance_scatter, pruning_curves, readout_curves,
                                             seq2seq_head_bars, ensemble_points, stability_bars)
from aine_lib.report.plots.scaling import scaling_curves, model_size_curves, SCALING_ATTENTION
from aine_lib.report.plots.explanations import explanation_rows
from aine_lib.report.plots.findings import evidence_coverage

__all__ = [
    "NEGLIGIBLE_SCORE", "SCALING_ATTENTION", "STYLE", "adversarial_scatter", "aer_points", "agreement_matrix",
    "alignment_maps", "apply_style", "attribution_heatmaps", "comprehensiveness_curves", "decay_curves",
    "diagnostic_points", "difference_densities", "ensemble_points", "erasure_bars", "erasure_boxplots",
    "evidence_coverage", "explanation_rows", "faithfulness_points", "head_importance_scatter", "jsd_densities", "layer_head_heatmap",
    "length_histograms", "model_size_curves", "peakedness_points", "performance_points", "permutation_violins",
    "plausibility_points", "pruning_curves", "readout_curves", "scaling_curves", "seq2seq_head_bars",
    "single_erasure_scatter", "stability_bars", "tau_histograms", "tradeoff_curves", "training_curves",
    "uniform_baseline_points"
]
