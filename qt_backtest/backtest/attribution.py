"""Per-layer attribution: what each Arbiter override was worth, and which layer earned the PnL.

For an override at bar t the counterfactual replaces that bar's final decision with the
ensemble's (the risk governor applied to it as to any decision) and re-simulates. The two
position paths differ from t until their target exposures agree again (bar u); the override's
value is the equity difference once the position of bar u is filled. Every counterfactual is a
plain re-simulation, so it equals simulating the modified decisions bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qt_backtest.backtest.periods import periods_per_year
from qt_backtest.backtest.rules import PositionRules
from qt_backtest.backtest.simulate import BacktestResult, run_portfolio, simulate, target_exposure
from qt_backtest.indicators import realized_volatility

REGIMES = ("low", "middle", "high")


def counterfactual_decisions(decisions: pd.DataFrame, bar: int, minimum: float | None = 0.65):
    """``decisions`` with bar ``bar``'s final decision replaced by the ensemble's."""
    changed = decisions[["final_action", "final_confidence"]].copy()
    changed["final_action"] = changed["final_action"].astype(object)
    action = str(decisions["base_action"].iloc[bar])
    confidence = float(decisions["base_confidence"].iloc[bar])
    if minimum is not None and action != "HOLD" and confidence < minimum:
        action = "HOLD"  # the live risk governor
    changed.iloc[bar, 0] = action
    changed.iloc[bar, 1] = confidence
    changed["final_action"] = pd.Categorical(
        changed["final_action"], categories=["SELL", "HOLD", "BUY"]
    )
    return changed


def counterfactual_path(
    bars: pd.DataFrame,
    decisions: pd.DataFrame,
    bar: int,
    rules: PositionRules | None = None,
    *,
    min_trade_confidence: float | None = 0.65,
    stop: int | None = None,
) -> pd.Series:
    """Equity of the run where bar ``bar`` follows the ensemble instead of the Arbiter,
    through bar ``stop`` (the end by default)."""
    rules = rules or PositionRules()
    changed = counterfactual_decisions(decisions, bar, min_trade_confidence)
    end = len(bars) if stop is None else stop + 1
    target = target_exposure(changed.iloc[:end], rules)
    portfolio = run_portfolio(bars.iloc[:end], target, rules, periods_per_year(bars.index))
    return portfolio.value().rename("value")


def _vote_pattern(votes: pd.DataFrame, models: list[str]) -> pd.Series:
    letters = {"BUY": "B", "SELL": "S", "HOLD": "H"}
    parts = [votes[f"{m}_action"].astype(object).map(letters).fillna("-") for m in models]
    pattern = parts[0]
    for part in parts[1:]:
        pattern = pattern + part
    return pattern


def override_values(
    bars: pd.DataFrame,
    decisions: pd.DataFrame,
    rules: PositionRules | None = None,
    *,
    votes: pd.DataFrame | None = None,
    min_trade_confidence: float | None = 0.65,
    limit: int | None = None,
) -> pd.DataFrame:
    """Value of every Arbiter override of a ``meta_arbiter`` replay.

    Parameters
    ----------
    bars : DataFrame
        OHLCV bars the decisions were made on.
    decisions : DataFrame
        The ``meta_arbiter`` replay (:func:`~qt_backtest.hierarchy.replay`).
    rules : PositionRules, optional
        Position model and costs (as in the actual run).
    votes : DataFrame, optional
        Model votes, to label each override with its vote pattern (one letter per model:
        B, S, H or - for no vote).
    min_trade_confidence : float or None
        The risk governor used by the replay (applied to the counterfactual decision too).
    limit : int, optional
        Evaluate at most ``limit`` overrides, evenly spread over the run (each costs one
        simulation of the bars up to where the paths agree again).

    Returns
    -------
    DataFrame, one row per override: ``timestamp``, ``arbiter_action``, ``base_action``,
    ``arbiter_reason``, ``meta_reason``, ``vote_pattern``, ``volatility_regime``
    (terciles of 20-bar realised volatility over the whole sample), ``agree_bar`` (when the
    two target exposures agree again; the last bar if they never do), ``value`` (equity
    difference, quote currency, after costs) and ``relative_value`` (actual / counterfactual
    equity - 1).
    """
    rules = rules or PositionRules()
    actual = simulate(bars, decisions, rules)
    actual_target = actual.target.to_numpy()
    overrides = np.flatnonzero((decisions["gate"] == "override").to_numpy())
    if limit is not None and overrides.size > limit:
        overrides = overrides[np.unique(np.linspace(0, overrides.size - 1, limit).astype(int))]
    volatility = realized_volatility(bars["close"], 20)
    edges = volatility.quantile([1 / 3, 2 / 3]).to_numpy()
    regime = np.where(volatility < edges[0], 0, np.where(volatility < edges[1], 1, 2))
    pattern = (
        None
        if votes is None
        else _vote_pattern(
            votes, [c[: -len("_action")] for c in votes.columns if str(c).endswith("_action")]
        )
    )
    rows = []
    last = len(bars) - 1
    for bar in overrides:
        changed = counterfactual_decisions(decisions, bar, min_trade_confidence)
        other_target = target_exposure(changed, rules).to_numpy()
        differs = np.flatnonzero(actual_target[bar:] != other_target[bar:])
        # from the bar after the last difference on, both runs want the same exposure
        agree = bar if differs.size == 0 else min(bar + int(differs[-1]) + 1, last)
        settled = min(agree + rules.execution_lag, last)
        other = counterfactual_path(
            bars,
            decisions,
            int(bar),
            rules,
            min_trade_confidence=min_trade_confidence,
            stop=settled,
        )
        actual_value = actual.value.iloc[settled]
        other_value = other.iloc[-1]
        rows.append(
            {
                "timestamp": bars.index[bar],
                "bar": int(bar),
                "arbiter_action": str(decisions["arbiter_action"].iloc[bar]),
                "base_action": str(decisions["base_action"].iloc[bar]),
                "arbiter_reason": str(decisions["arbiter_reason"].iloc[bar]),
                "meta_reason": str(decisions["meta_reason"].iloc[bar]),
                "vote_pattern": None if pattern is None else pattern.iloc[bar],
                "volatility_regime": REGIMES[int(regime[bar])]
                if np.isfinite(volatility.iloc[bar])
                else None,
                "agree_bar": int(agree),
                "value": actual_value - other_value,
                "relative_value": actual_value / other_value - 1.0,
            }
        )
    return pd.DataFrame(rows)


def value_by(values: pd.DataFrame, column: str) -> pd.DataFrame:
    """Distribution of override values by a label column (count, total, mean, median, share
    of overrides that added value)."""
    grouped = values.groupby(column, dropna=False)["value"]
    table = pd.DataFrame(
        {
            "overrides": grouped.size(),
            "total_value": grouped.sum(),
            "mean_value": grouped.mean(),
            "median_value": grouped.median(),
            "added_value_share": grouped.apply(lambda v: float((v > 0).mean())),
        }
    )
    return table.sort_values("overrides", ascending=False)


def pnl_by_layer(result: BacktestResult, decisions: pd.DataFrame) -> pd.DataFrame:
    """Equity change of each bar credited to the layer whose decision set the position held.

    A HOLD keeps the position, so the credit goes to the source of the last decision that
    changed the target exposure (the ensemble before any change). Returns PnL (quote currency)
    and share of total PnL for ``ensemble`` and ``arbiter``.
    """
    target = result.target.to_numpy()
    source = decisions["source"].astype(object).to_numpy()
    changed = np.concatenate([[target[0] != 0], target[1:] != target[:-1]])
    setter = pd.Series(np.where(changed, source, None)).ffill().fillna("ensemble").to_numpy()
    lag = result.rules.execution_lag
    held_by = np.concatenate([np.full(lag, "ensemble", dtype=object), setter[: len(setter) - lag]])
    change = np.diff(np.concatenate([[result.rules.init_cash], result.value.to_numpy()]))
    total = change.sum()
    rows = {}
    for layer in ("ensemble", "arbiter"):
        pnl = float(change[held_by == layer].sum())
        rows[layer] = {
            "pnl": pnl,
            "share_of_total": pnl / total if total else np.nan,
            "bars": int((held_by == layer).sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")
