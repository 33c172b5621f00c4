"""Simulated paired returns with serial dependence and fat tails, and a known Sharpe ratio.

Two strategies share a GARCH(1,1) volatility (the market's) and AR(1) dynamics; their
standardised Student-t shocks are correlated. With these parameters the unconditional
standard deviation of the noise is known in closed form, so each run's true Sharpe ratio is
its mean over that deviation.
"""

from __future__ import annotations

import math

import numpy as np

GARCH_OMEGA = 0.05
GARCH_ALPHA = 0.08
GARCH_BETA = 0.87
AR = 0.25
DEGREES = 5
CORRELATION = 0.6


def noise_sd() -> float:
    """Unconditional standard deviation of the simulated noise."""
    innovation_variance = GARCH_OMEGA / (1.0 - GARCH_ALPHA - GARCH_BETA)
    return math.sqrt(innovation_variance / (1.0 - AR**2))


def paired_returns(
    simulations: int, n: int, sharpe_a: float, sharpe_b: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``simulations`` pairs of return series of length ``n`` with true per-period Sharpe
    ratios ``sharpe_a`` and ``sharpe_b``: two arrays of shape (simulations, n)."""
    rng = np.random.default_rng(seed)
    burn = 300
    scale = math.sqrt((DEGREES - 2) / DEGREES)  # Student-t with unit variance
    shocks = rng.standard_t(DEGREES, size=(2, burn + n, simulations)) * scale
    mixed = CORRELATION * shocks[0] + math.sqrt(1 - CORRELATION**2) * shocks[1]
    variance = np.full(simulations, GARCH_OMEGA / (1 - GARCH_ALPHA - GARCH_BETA))
    previous = np.zeros((2, simulations))
    out = np.empty((2, burn + n, simulations))
    for t in range(burn + n):
        volatility = np.sqrt(variance)
        innovation = np.stack([shocks[0, t], mixed[t]]) * volatility
        current = AR * previous + innovation
        out[:, t] = current
        previous = current
        # the market's variance responds to the first strategy's innovation
        variance = GARCH_OMEGA + GARCH_ALPHA * innovation[0] ** 2 + GARCH_BETA * variance
    sd = noise_sd()
    a = sharpe_a * sd + out[0, burn:].T
    b = sharpe_b * sd + out[1, burn:].T
    return np.ascontiguousarray(a), np.ascontiguousarray(b)
