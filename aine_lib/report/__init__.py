"""What the study reports: figures (:mod:`~aine_lib.report.plots`), findings rendered from the tables
(:mod:`~aine_lib.report.findings`), and the published numbers we compare with (:mod:`~aine_lib.report.published`).
"""
