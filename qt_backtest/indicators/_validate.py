"""Argument checks shared by the indicator API and the streaming classes."""

from __future__ import annotations

import numbers


def check_period(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise naming the parameter and the accepted range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer number of bars, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} bars, got {value}")
    return int(value)


def check_nonnegative(value: object, name: str) -> float:
    """Return ``value`` as a float, or raise if it is not a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value
