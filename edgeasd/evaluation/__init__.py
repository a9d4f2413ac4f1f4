"""Evaluation on DCASE Task 2 data: datasets, the official metric, normalization approaches.

Modules: :mod:`~edgeasd.evaluation.metrics` (the official evaluator's AUC / pAUC / scores),
:mod:`~edgeasd.evaluation.datasets` (layouts and ground truth), :mod:`~edgeasd.evaluation.cache`
(embedding cache), :mod:`~edgeasd.evaluation.scorefiles` (official score files),
:mod:`~edgeasd.evaluation.approaches` (Table II approaches), :mod:`~edgeasd.evaluation.comparison`
(Table II, sweep, operating point), :mod:`~edgeasd.evaluation.report` (Markdown, plots) and
:mod:`~edgeasd.evaluation.pipeline` (``edgeasd eval``).
"""
