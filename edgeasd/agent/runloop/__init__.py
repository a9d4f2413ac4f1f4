"""The run loop: the daemon, the stages it builds, sd_notify and the journal's format.

:mod:`.daemon` scores window after window; :mod:`.stages` builds the embedder and source from a
config; :mod:`.notify` talks to systemd. May import every other agent sub-package and the layers
below (fleet, scoring, audio, embedding, config). Importing this package imports none of them.
"""
