"""Tests of the shipped default model and its model card."""
