"""Per-layer attribution: what each Arbiter override was worth, and which layer earned the PnL.

For an override at bar t the counterfactual replaces that bar's final decision with the
ensemble's (the risk governor applied to it as to any decision) and re-simulates. The two
position paths differ from t until their target exposures agree again (bar u); the override's
value is the equity difference once the position of bar u is filled. Every counterfactual is a
plain re-simulation, so it equals simulating the modified decisions bit for bit.
"""

from __future__ import annotations

import dataclasses
import gc

import numpy as np
import pandas as pd

from qt_backtest.backtest import nb
from qt_backtest.backtest.periods import periods_per_year
from qt_backtest.backtest.rules import PositionRules
from qt_backtest.backtest.simulate import BacktestResult, run_portfolio, simulate, target_exposure
from qt_backtest.codes import ACTION_DTYPE, HOLD, encode_actions
from qt_backtest.hierarchy.config import HierarchyConfig
from qt_backtest.indicators import realized_volatility

REGIMES = ("low", "middle", "high")
#: Bars x counterfactual columns simulated at once, at most (about 40 MB a float array):
#: keeps override valuation within a few hundred MB at a million bars.
BATCH_CELLS = 5_000_000
#: The live risk governor's threshold, as the hierarchy configures it by default.
MIN_TRADE_CONFIDENCE = HierarchyConfig().min_trade_confidence


def counterfactual_decisions(
    decisions: pd.DataFrame, bar: int, minimum: float | None = MIN_TRADE_CONFIDENCE
):
    """``decisions`` with bar ``bar``'s final decision replaced by the ensemble's."""
    changed = decisions[["final_action", "final_confidence"]].copy()
    changed["final_action"] = changed["final_action"].astype(object)
    action = str(decisions["base_action"].iloc[bar])
    confidence = float(decisions["base_confidence"].iloc[bar])
    if minimum is not None and action != "HOLD" and confidence < minimum:
        action = "HOLD"  # the live risk governor
    changed.iloc[bar, 0] = action
    changed.iloc[bar, 1] = confidence
    changed["final_action"] = pd.Categorical(changed["final_action"], dtype=ACTION_DTYPE)
    return changed


def _codes(decisions: pd.DataFrame, column: str) -> np.ndarray:
    return encode_actions(decisions[column])[0]


def _counterfactual_targets(
    decisions: pd.DataFrame, bars_at: np.ndarray, rules: PositionRules, minimum: float | None
) -> np.ndarray:
    """Target exposures of the counterfactual of each override in ``bars_at``, shape
    (bars, len(bars_at)): the same kernel as the actual run, with one decision replaced."""
    actions = _codes(decisions, "final_action")
    confidences = np.nan_to_num(decisions["final_confidence"].to_numpy(dtype=np.float64))
    base_actions = _codes(decisions, "base_action")
    base_confidences = decisions["base_confidence"].to_numpy(dtype=np.float64)
    targets = np.empty((len(actions), len(bars_at)))
    for column, bar in enumerate(bars_at):
        changed = actions.copy()
        changed_confidence = confidences.copy()
        action, confidence = base_actions[bar], base_confidences[bar]
        if minimum is not None and action != HOLD and confidence < minimum:
            action = HOLD  # the live risk governor
        changed[bar] = action
        changed_confidence[bar] = confidence
        nb.target_exposure_nb(
            changed,
            changed_confidence,
            rules.long_only,
            1 if rules.hold == "flat" else 0,
            rules.max_hold_bars or 0,
            float(rules.size),
            rules.scale_by_confidence,
            targets[:, column],
        )
    return targets


def counterfactual_path(
    bars: pd.DataFrame,
    decisions: pd.DataFrame,
    bar: int,
    rules: PositionRules | None = None,
    *,
    min_trade_confidence: float | None = MIN_TRADE_CONFIDENCE,
    stop: int | None = None,
) -> pd.Series:
    """Equity of the run where bar ``bar`` follows the ensemble instead of the Arbiter,
    through bar ``stop`` (the end by default)."""
    rules = rules or PositionRules()
    changed = counterfactual_decisions(decisions, bar, min_trade_confidence)
    end = len(bars) if stop is None else stop + 1
    target = target_exposure(changed.iloc[:end], rules)
    portfolio = run_portfolio(
        bars.iloc[:end], target, _rules_until(rules, end, len(bars)), periods_per_year(bars.index)
    )
    return pd.Series(portfolio.value().to_numpy(), index=bars.index[:end], name="value")


def _rules_until(rules: PositionRules, stop: int, bars: int) -> PositionRules:
    """The rules of a run cut short at bar ``stop`` (exclusive) of ``bars``: the position is
    closed at the end only where the whole run ends, as in the run it stands in for."""
    if rules.close_at_end and stop < bars:
        return dataclasses.replace(rules, close_at_end=False)
    return rules


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
    min_trade_confidence: float | None = MIN_TRADE_CONFIDENCE,
    limit: int | None = None,
    batch: int = 100,
    actual: BacktestResult | None = None,
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
    batch : int
        Counterfactuals simulated together (memory grows with batch x bars).
    actual : BacktestResult, optional
        The simulation of ``decisions`` under ``rules``, when already at hand (a comparison's
        ``meta_arbiter`` run); simulated here otherwise.

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
    if actual is None:
        actual = simulate(bars, decisions, rules)
    elif not actual.value.index.equals(bars.index) or actual.rules != rules:
        raise ValueError("actual must be the simulation of these decisions on these bars and rules")
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
    last = len(bars) - 1
    per_year = periods_per_year(bars.index)
    rows = []
    # counterfactuals run side by side as columns of one vectorbt simulation per batch; each
    # column is simulated on its own, exactly as a single run would be
    # memory grows with bars x columns: long histories take fewer columns per simulation
    batch = max(1, min(batch, BATCH_CELLS // max(len(bars), 1)))
    for first in range(0, overrides.size, batch):
        chunk = overrides[first : first + batch]
        targets = _counterfactual_targets(decisions, chunk, rules, min_trade_confidence)
        settled_bars = []
        agree_bars = []
        for column, bar in enumerate(chunk):
            differs = np.flatnonzero(actual_target[bar:] != targets[bar:, column])
            # from the bar after the last difference on, both runs want the same exposure
            agree = bar if differs.size == 0 else min(bar + int(differs[-1]) + 1, last)
            agree_bars.append(agree)
            settled_bars.append(min(agree + rules.execution_lag, last))
        stop = max(settled_bars) + 1
        frame = pd.DataFrame(targets[:stop], index=bars.index[:stop])
        values = (
            run_portfolio(bars.iloc[:stop], frame, _rules_until(rules, stop, len(bars)), per_year)
            .value()
            .to_numpy()
        )
        # vectorbt caches results on the portfolio through a reference cycle: collect it now,
        # or the batches' arrays pile up until the cyclic collector happens to run (gigabytes
        # at a million bars)
        gc.collect()
        for column, bar in enumerate(chunk):
            settled = settled_bars[column]
            actual_value = actual.value.iloc[settled]
            other_value = values[settled, column]
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
                    "agree_bar": int(agree_bars[column]),
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
