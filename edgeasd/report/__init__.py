"""``edgeasd report``: one HTML file for a time range.

:mod:`~edgeasd.report.build` gathers the logs and audio; :mod:`~edgeasd.report.plots` draws
the pictures (matplotlib, imported lazily).
"""

#: Alerts shown with pictures and audio by default (the latest ones); the others are
#: listed in a table. Each detailed alert adds its spectrogram picture (83 kB in the test
#: demo's report) and two players of one window each (~0.35 MB for 10 s at 16 kHz as
#: 16-bit FLAC): about 0.85 MB, so 20 keep a report under ~20 MB, small enough to mail.
DEFAULT_MAX_ALERTS = 20
