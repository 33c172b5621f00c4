"""Does each layer add value? The rollout modes side by side on the same bars, costs and rules,
and the rollout check of their rates and results."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qt_backtest.backtest.metrics import performance
from qt_backtest.backtest.periods import periods_per_year
from qt_backtest.backtest.rules import PositionRules
from qt_backtest.backtest.simulate import BacktestResult, simulate
from qt_backtest.backtest.window import (
    CoverageWarning,
    coverage_message,
    evaluation_window,
    model_coverage,
)
from qt_backtest.codes import ACTION_DTYPE
from qt_backtest.data.loaders import frame_symbol
from qt_backtest.hierarchy.config import HierarchyConfig
from qt_backtest.hierarchy.rates import RateTargets, decision_rates
from qt_backtest.hierarchy.replay import arbiter_decisions, replay

#: Runs of a comparison: the three rollout stages, and the Arbiter alone and buy-and-hold of
#: the symbol as references.
RUNS = ("ensemble", "meta", "meta_arbiter", "arbiter_only", "buy_and_hold")
#: The runs that replay the hierarchy.
HIERARCHY_RUNS = ("ensemble", "meta", "meta_arbiter")
AGGREGATE = "equal_weight"


@dataclass
class Comparison:
    """Result of :func:`compare_modes`.

    Attributes
    ----------
    table : DataFrame
        Metrics per (symbol, run); symbol ``equal_weight`` is the aggregate of all symbols.
    equity : DataFrame
        Equity curves, columns (symbol, run), aligned on the union of timestamps.
    decisions : dict
        Decision frames by (symbol, run): replay frames, and ``final_action`` /
        ``final_confidence`` for buy-and-hold.
    results : dict
        :class:`BacktestResult` by (symbol, run).
    windows : DataFrame
        The evaluation window per symbol: ``start``, ``end`` (timestamps of its first and last
        bar), ``bars`` and ``warmup_bars`` (bars before it, left out).
    bars : dict
        The bars of each symbol's window, which every run was scored on.
    coverage : DataFrame
        Per (symbol, model) of the configuration: bars with a vote in the window, their share,
        first and last (see :func:`qt_backtest.backtest.window.model_coverage`).
    rules : PositionRules
        The position model and costs of the hierarchy's runs.
    """

    table: pd.DataFrame
    equity: pd.DataFrame
    decisions: dict = field(repr=False)
    results: dict = field(repr=False)
    windows: pd.DataFrame = field(default_factory=pd.DataFrame)
    bars: dict = field(default_factory=dict, repr=False)
    coverage: pd.DataFrame = field(default_factory=pd.DataFrame)
    rules: PositionRules = field(default_factory=PositionRules)


def aggregate_value(results: list[BacktestResult], init_cash: float) -> pd.Series:
    """Equity of equal weights at the start, never rebalanced: the mean of the normalised
    equity curves on the union of their timestamps (a curve keeps its first value before its
    first bar and its last after its last), times ``init_cash``."""
    curves = pd.concat([r.value / init_cash for r in results], axis=1).ffill().bfill()
    return curves.mean(axis=1) * init_cash


def _aggregate(results: list[BacktestResult], rules: PositionRules, per_year: float) -> dict:
    value = aggregate_value(results, rules.init_cash)
    share = 1.0 / len(results)
    pnl = np.concatenate(
        [r.trades.loc[r.trades["closed"], "pnl"].to_numpy() * share for r in results]
    )
    exposure = pd.concat([r.position for r in results], axis=1).fillna(0.0).abs().mean(axis=1)
    traded = sum(float((r.orders["size"].abs() * r.orders["price"]).sum()) for r in results)
    fees = sum(float(r.orders["fees"].sum()) for r in results)
    return performance(
        value, pnl, exposure.to_numpy(), traded * share, fees * share, rules.init_cash, per_year
    )


def buy_and_hold(index: pd.Index) -> pd.DataFrame:
    """Decisions of buy-and-hold: BUY on the first bar, HOLD after (confidence 1)."""
    actions = pd.Categorical(["BUY"] + ["HOLD"] * (len(index) - 1), dtype=ACTION_DTYPE)
    return pd.DataFrame({"final_action": actions, "final_confidence": 1.0}, index=index)


def benchmark_rules(rules: PositionRules) -> PositionRules:
    """The rules of buy-and-hold: the same costs, lag, fill price, close-out, lot size and
    closing at the end, fully invested, the position kept whatever comes."""
    return dataclasses.replace(
        rules,
        hold="keep",
        max_hold_bars=None,
        size=1.0,
        scale_by_confidence=False,
        long_only=False,
    )


def compare_modes(
    bars: pd.DataFrame | Mapping[str, pd.DataFrame],
    votes: pd.DataFrame | Mapping[str, pd.DataFrame],
    indicators: pd.DataFrame | Mapping[str, pd.DataFrame],
    rules: PositionRules | None = None,
    config: HierarchyConfig | None = None,
    *,
    uncertainty_model=None,
) -> Comparison:
    """Run ``ensemble``, ``meta``, ``meta_arbiter``, ``arbiter_only`` and ``buy_and_hold`` on
    the same bars: each symbol's evaluation window, from its first bar with a model vote to
    its last (see :mod:`qt_backtest.backtest.window`). Earlier bars are warm-up.

    Parameters
    ----------
    bars, votes, indicators : DataFrame or mapping of symbol to DataFrame
        OHLCV bars, model votes (prediction columns, indexed like the bars) and the Arbiter's
        inputs, for one symbol or several (same keys).
    rules : PositionRules, optional
        Position model and costs shared by every run.
    config : HierarchyConfig, optional
        Thresholds and fidelity; its ``mode`` is replaced run by run.
    """
    rules = rules or PositionRules()
    config = config or HierarchyConfig()
    if not isinstance(bars, Mapping):
        symbol = frame_symbol(bars)
        bars, votes, indicators = {symbol: bars}, {symbol: votes}, {symbol: indicators}
    if not (set(bars) == set(votes) == set(indicators)):
        raise ValueError("bars, votes and indicators must name the same symbols")
    decisions, results, rows, windows, scored, coverage = {}, {}, {}, {}, {}, {}
    for symbol, full in bars.items():
        if not votes[symbol].index.equals(full.index):
            raise ValueError(
                f"{symbol or 'votes'}: votes must be indexed like the bars (one row per bar)"
            )
        first, stop = evaluation_window(votes[symbol], config.models)
        frame = full.iloc[first:stop]
        window_votes = votes[symbol].iloc[first:stop]
        window_inputs = indicators[symbol].reindex(frame.index)
        windows[symbol] = {
            "start": frame.index[0],
            "end": frame.index[-1],
            "bars": len(frame),
            "warmup_bars": first,
        }
        scored[symbol] = frame
        coverage[symbol] = model_coverage(window_votes, config.models)
        for run in RUNS:
            run_rules = rules
            if run == "arbiter_only":
                made = arbiter_decisions(window_inputs, config)
            elif run == "buy_and_hold":
                made = buy_and_hold(frame.index)
                run_rules = benchmark_rules(rules)
            else:
                made = replay(
                    window_votes,
                    window_inputs,
                    config.replace(mode=run),
                    uncertainty_model=uncertainty_model,
                )
            result = simulate(frame, made, run_rules)
            decisions[symbol, run] = made
            results[symbol, run] = result
            rows[symbol, run] = result.metrics
    if len(bars) > 1:
        per_year = min(periods_per_year(frame.index) for frame in bars.values())
        for run in RUNS:
            members = [results[symbol, run] for symbol in bars]
            rows[AGGREGATE, run] = pd.Series(_aggregate(members, rules, per_year))
    table = pd.DataFrame.from_dict(rows, orient="index")
    if "ruined_at" in table.columns:  # NaT for survivors: one timestamp dtype for the column
        table["ruined_at"] = pd.to_datetime(table["ruined_at"], utc=True).astype(
            "datetime64[ns, UTC]"
        )
    table.index = pd.MultiIndex.from_tuples(table.index, names=["symbol", "run"])
    equity = pd.concat({key: result.value for key, result in results.items()}, axis=1)
    equity.columns.names = ["symbol", "run"]
    window_table = pd.DataFrame.from_dict(windows, orient="index").rename_axis("symbol")
    found = [coverage_message(frame, config.fidelity, symbol) for symbol, frame in coverage.items()]
    messages = [message for message in found if message]
    if messages:
        warnings.warn(" | ".join(messages), CoverageWarning, stacklevel=2)
    coverage_table = pd.concat(coverage, names=["symbol", "model"])
    return Comparison(
        table, equity, decisions, results, window_table, scored, coverage_table, rules
    )


def rollout_check(comparison: Comparison, targets: RateTargets | None = None) -> pd.DataFrame:
    """The rollout's success criteria per symbol for the full hierarchy (``meta_arbiter``).

    Criteria: escalation, defer, Arbiter invocation and override-when-called rates and the
    ensemble/Arbiter source shares within their target bands (H-ROLL-8), and no degradation
    against ensemble-only: a Sharpe ratio at least as high. Bars where no model voted are left
    out of the rates. A closed-out (ruined) ``meta_arbiter`` run fails every criterion.

    Returns one row per (symbol, criterion): ``value``, ``target`` (text) and ``passes``.
    """
    targets = targets or RateTargets()
    rows = []
    symbols = sorted({symbol for symbol, _ in comparison.decisions})
    for symbol in symbols:
        ruined = bool(comparison.table.loc[(symbol, "meta_arbiter"), "ruined"])
        decisions = comparison.decisions[symbol, "meta_arbiter"]
        voted = decisions[decisions["voters"] > 0]
        for rate, row in decision_rates(voted, targets).iterrows():
            rows.append(
                {
                    "symbol": symbol,
                    "criterion": rate,
                    "value": row["value"],
                    "target": f"{row['target_low']:.0%} to {row['target_high']:.0%}",
                    "passes": bool(row["passes"]) and not ruined,
                }
            )
        full = comparison.table.loc[(symbol, "meta_arbiter"), "sharpe"]
        base = comparison.table.loc[(symbol, "ensemble"), "sharpe"]
        rows.append(
            {
                "symbol": symbol,
                "criterion": "sharpe_vs_ensemble",
                "value": full - base,
                "target": ">= 0 (Sharpe of meta_arbiter minus ensemble)",
                "passes": bool(full >= base) and not ruined,
            }
        )
    return pd.DataFrame(rows).set_index(["symbol", "criterion"])
