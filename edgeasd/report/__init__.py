"""``edgeasd report``: one HTML file for a time range.

:mod:`~edgeasd.report.build` gathers the logs and audio; :mod:`~edgeasd.report.plots` draws
the pictures (matplotlib, imported lazily).
"""
