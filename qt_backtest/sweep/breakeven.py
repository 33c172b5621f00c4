"""Break-even costs: the fee per side at which a layer's advantage is gone.

A layer that trades more pays more fees; an advantage measured at one fee may vanish at a
higher one. :func:`break_even_fees` sweeps the fee (one fused-kernel run over the rollout
stages times a fee grid, then a finer grid around each crossing) and reports, per symbol and
transition, the fee per side where the later run's advantage in total return and in Sharpe
ratio reaches zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from qt_backtest.backtest.rules import PositionRules
from qt_backtest.hierarchy.config import HierarchyConfig
from qt_backtest.sweep.grid import Grid
from qt_backtest.sweep.run import sweep

#: Transitions between rollout stages (later, earlier).
STAGE_PAIRS = (("meta", "ensemble"), ("meta_arbiter", "meta"), ("meta_arbiter", "ensemble"))
#: Largest fee per side searched (1 %): beyond it no venue charges.
MAX_FEE = 0.01
#: What the break-even fee says when there is no crossing.
NO_ADVANTAGE, ALWAYS_AHEAD, IDENTICAL, CROSSES = (
    "no advantage even without fees",
    "ahead at every fee searched",
    "identical runs",
    "crosses",
)


def _crossing(fees: np.ndarray, advantage: np.ndarray) -> tuple[int, str]:
    """Index ``i`` of the first grid step where the advantage goes from positive to not
    positive (the crossing lies in ``fees[i - 1]..fees[i]``), and the status."""
    if np.all(advantage == 0.0):
        return -1, IDENTICAL
    if not advantage[0] > 0:
        return -1, NO_ADVANTAGE
    after = np.flatnonzero(~(advantage > 0))
    if not len(after):
        return -1, ALWAYS_AHEAD
    return int(after[0]), CROSSES


def _interpolate(fees: np.ndarray, advantage: np.ndarray, i: int) -> float:
    left, right = advantage[i - 1], advantage[i]
    if not np.isfinite(right) or right == left:
        return float(fees[i])
    return float(fees[i - 1] + (fees[i] - fees[i - 1]) * left / (left - right))


def break_even_fees(
    bars: Mapping[str, pd.DataFrame],
    votes: Mapping[str, pd.DataFrame],
    indicators: Mapping[str, pd.DataFrame],
    *,
    config: HierarchyConfig | None = None,
    rules: PositionRules | None = None,
    pairs: Sequence[tuple[str, str]] = STAGE_PAIRS,
    steps: int = 41,
    max_fee: float = MAX_FEE,
) -> pd.DataFrame:
    """Fee per side at which each transition's advantage reaches zero.

    Parameters
    ----------
    bars, votes, indicators : mapping of symbol to DataFrame
        As for :func:`~qt_backtest.backtest.compare.compare_modes` (same evaluation window).
    config, rules : optional
        The hierarchy and the position rules; the fee is replaced by the searched values.
    pairs : sequence of (str, str)
        ``(later, earlier)`` rollout stages.
    steps : int
        Points of the coarse fee grid from 0 to ``max_fee``; each crossing is then located on
        a grid of ``steps`` points between its neighbours.
    max_fee : float
        Largest fee per side searched (a fraction).

    Returns
    -------
    DataFrame
        Index (symbol, later, earlier, metric) with metric ``total_return`` or ``sharpe``:
        ``advantage_at_fee`` (at the rules' own fee), ``break_even_fee`` (NaN without a
        crossing) and ``status`` (:data:`CROSSES`, :data:`NO_ADVANTAGE`,
        :data:`ALWAYS_AHEAD` or :data:`IDENTICAL`).
    """
    config = config or HierarchyConfig()
    rules = rules or PositionRules()
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 3:
        raise ValueError(f"steps must be an integer of at least 3, got {steps!r}")
    if not 0 < max_fee < 1:
        raise ValueError(f"max_fee must be in (0, 1), got {max_fee!r}")
    modes = sorted({mode for pair in pairs for mode in pair})
    coarse = np.unique(np.append(np.linspace(0.0, max_fee, steps), rules.fee))

    def run(symbol: str, fees: np.ndarray) -> pd.DataFrame:
        grid = Grid.product({"mode": modes, "rules.fee": [float(f) for f in fees]})
        result = sweep(
            {symbol: bars[symbol]},
            {symbol: votes[symbol]},
            {symbol: indicators[symbol]},
            grid,
            config=config,
            rules=rules,
            period=None,
        )
        return result.frame.set_index(["symbol", "mode", "rules.fee"])[["total_return", "sharpe"]]

    rows = []
    for symbol in bars:
        table = run(symbol, coarse)
        for later, earlier in pairs:
            for metric in ("total_return", "sharpe"):
                advantage = (
                    table.loc[(symbol, later), metric].to_numpy()
                    - table.loc[(symbol, earlier), metric].to_numpy()
                )
                own = float(advantage[np.flatnonzero(coarse == rules.fee)[0]])
                i, status = _crossing(coarse, advantage)
                fee = np.nan
                if status == CROSSES:
                    fine = np.linspace(coarse[i - 1], coarse[i], steps)
                    finer = run(symbol, fine)
                    close = (
                        finer.loc[(symbol, later), metric].to_numpy()
                        - finer.loc[(symbol, earlier), metric].to_numpy()
                    )
                    j, _ = _crossing(fine, close)
                    fee = _interpolate(fine, close, j) if j > 0 else float(fine[0])
                rows.append(
                    {
                        "symbol": symbol,
                        "later": later,
                        "earlier": earlier,
                        "metric": metric,
                        "advantage_at_fee": own,
                        "break_even_fee": fee,
                        "status": status,
                    }
                )
    return pd.DataFrame(rows).set_index(["symbol", "later", "earlier", "metric"])
