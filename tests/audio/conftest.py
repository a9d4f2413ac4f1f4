"""Fixtures of the audio tests: the virtual ALSA capture device."""

from support.alsa_feed import alsa_feed  # noqa: F401  (tests/ is on sys.path)
