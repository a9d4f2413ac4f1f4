"""Tests of the agent core: config, paths, embedder, detector, sinks, sd_notify, systemd."""
