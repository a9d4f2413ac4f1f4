"""Tests of the audio input stages: file I/O, resampling, sources, microphone, windower."""
