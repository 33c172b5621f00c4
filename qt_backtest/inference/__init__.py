"""Verdicts with uncertainty: paired tests of the layers, multiple testing across sweeps,
track-record lengths and rollout power."""
