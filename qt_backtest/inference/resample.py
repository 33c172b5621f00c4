"""Bootstrap resamples of dependent series: the stationary bootstrap (Politis and Romano,
1994), the circular block bootstrap, and the automatic block length (Politis and White,
2004, corrected by Patton, Politis and White, 2009).

The random streams are those of :mod:`arch.bootstrap` for the same seed: draw by draw, the
block starts (``Generator.integers``) and then the uniforms (``Generator.random``). A
statistic computed here from seed ``s`` is the statistic ``arch`` computes from seed ``s``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from qt_backtest.inference.nb import circular_indices_nb, stationary_indices_nb

#: Largest index array generated at once (elements): draws are produced in batches of this
#: size so that long histories with many draws stay within memory.
BATCH_ELEMENTS = 1 << 22


def check_draws(draws: int) -> int:
    """Validate a number of bootstrap draws (an integer, at least 1)."""
    if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    return int(draws)


def check_probability(value: float, name: str) -> float:
    """Validate a probability-like setting (confidence, level, power): a number in (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return float(value)


def check_block_length(block_length: float, n: int) -> float:
    """Validate a mean block length: a number in [1, n]."""
    if isinstance(block_length, bool) or not isinstance(block_length, int | float | np.number):
        raise ValueError(f"block_length must be a number or 'auto', got {block_length!r}")
    if not 1.0 <= float(block_length) <= max(n, 1):
        raise ValueError(
            f"block_length must be between 1 and the number of observations ({n}), "
            f"got {block_length!r}"
        )
    return float(block_length)


def optimal_block_length(x: np.ndarray) -> tuple[float, float]:
    """Automatic block length of a series for the stationary and the circular bootstrap.

    Politis and White's (2004) plug-in rule with the correction of Patton, Politis and White
    (2009): the block length that minimises the mean squared error of the bootstrap variance
    of the mean, from a flat-top lag-window estimate of the spectral density and its
    derivative at frequency 0. The estimate is ``arch.bootstrap.optimal_block_length``'s.

    Parameters
    ----------
    x : ndarray, shape (n,)
        The series (at least 9 observations, finite, not constant).

    Returns
    -------
    (stationary, circular) : tuple of float
        Mean block length for the stationary bootstrap and block length for the circular
        block bootstrap, both at least 1.
    """
    from arch.bootstrap import optimal_block_length as arch_block_length

    values = np.asarray(x, dtype=float)
    if values.ndim != 1:
        raise ValueError("optimal_block_length takes one series")
    if len(values) < 9:
        raise ValueError(f"a block length needs at least 9 observations, got {len(values)}")
    if not np.isfinite(values).all():
        raise ValueError("a block length needs finite values")
    if np.ptp(values) == 0.0:
        return 1.0, 1.0
    table = arch_block_length(values)
    stationary, circular = float(table["stationary"].iloc[0]), float(table["circular"].iloc[0])
    if not (np.isfinite(stationary) and np.isfinite(circular)):
        return 1.0, 1.0
    return max(stationary, 1.0), max(circular, 1.0)


def joint_block_length(columns: np.ndarray, kind: str = "stationary") -> float:
    """One block length for series resampled together: the longest of their automatic
    lengths, so that no column's dependence is cut shorter than it needs."""
    position = {"stationary": 0, "circular": 1}[kind]
    data = np.asarray(columns, dtype=float)
    data = data[:, None] if data.ndim == 1 else data
    return max(optimal_block_length(data[:, j])[position] for j in range(data.shape[1]))


def stationary_indices(
    n: int, block_length: float, draws: int, seed: int | np.random.Generator
) -> Iterator[np.ndarray]:
    """Index arrays of stationary-bootstrap resamples, in batches.

    Parameters
    ----------
    n : int
        Observations in the series.
    block_length : float
        Mean block length (a new block starts with probability ``1 / block_length``).
    draws : int
        Resamples in all.
    seed : int or numpy Generator
        Same seed, same resamples (and the same as ``arch.bootstrap.StationaryBootstrap``).

    Yields
    ------
    ndarray, shape (batch, n), int64
        Each row indexes one resample.
    """
    draws = check_draws(draws)
    block_length = check_block_length(block_length, n)
    generator = np.random.default_rng(seed)
    batch = max(1, min(draws, BATCH_ELEMENTS // max(n, 1)))
    probability = 1.0 / block_length
    made = 0
    while made < draws:
        size = min(batch, draws - made)
        starts = np.empty((size, n), dtype=np.int64)
        uniforms = np.empty((size, n))
        for d in range(size):  # draw by draw, as one resample after another
            starts[d] = generator.integers(n, size=n, dtype=np.int64)
            uniforms[d] = generator.random(n)
        yield stationary_indices_nb(starts, uniforms, probability)
        made += size


def circular_starts(n: int, block: int, draws: int, seed: int | np.random.Generator) -> np.ndarray:
    """Block starts of circular block-bootstrap resamples: shape (draws, ceil(n / block))."""
    draws = check_draws(draws)
    generator = np.random.default_rng(seed)
    blocks = -(-n // block)
    starts = np.empty((draws, blocks), dtype=np.int64)
    for d in range(draws):
        starts[d] = generator.integers(n, size=blocks, dtype=np.int64)
    return starts


def circular_indices(n: int, block: int, draws: int, seed: int | np.random.Generator) -> np.ndarray:
    """Index arrays of circular block-bootstrap resamples: shape (draws, n)."""
    return circular_indices_nb(circular_starts(n, block, draws, seed), n, block)
