"""Decisions and alerts: decision states, the threshold policy, the detector, alert audio, sinks.

What a window's score means and where the resulting events go. May import enrollment's bank
lifecycle and the layers below (fleet, scoring, audio, config); never the run loop or the
control socket. Importing this package imports none of its modules.
"""
