"""Rollout monitoring of the live hierarchy."""
