"""Threshold sweeps: every combination of a grid decided, traded and scored by the fused kernel.

>>> grid = Grid.product({"arbiter.arbiter_threshold": [0.6, 0.7, 0.8],
...                      "meta.consensus_threshold": [0.5, 0.75]})
>>> result = sweep(bars, votes, indicators, grid, modes=["meta", "meta_arbiter"])
>>> result.frame.sort_values("sharpe").tail()
"""

from __future__ import annotations

import gc
import hashlib
import io
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest import __version__
from qt_backtest.atomic import atomic_write
from qt_backtest.backtest.metrics import negligible_spread, sharpe_ratio
from qt_backtest.backtest.periods import periods_per_year
from qt_backtest.backtest.rules import PositionRules
from qt_backtest.backtest.window import (
    CoverageWarning,
    coverage_message,
    evaluation_window,
    model_coverage,
)
from qt_backtest.data.loaders import frame_symbol
from qt_backtest.data.validate import validate_ohlcv
from qt_backtest.hierarchy.config import MODES, HierarchyConfig
from qt_backtest.hierarchy.params import INDEX, SCALARS, PackedConfig, pack
from qt_backtest.hierarchy.replay import indicator_array, prediction_arrays
from qt_backtest.inference.returns import check_period, period_count_per_year, period_returns
from qt_backtest.inference.sharpe import min_backtest_length
from qt_backtest.sweep import nb
from qt_backtest.sweep.dedup import (
    DECISION_COLUMNS,
    SimulationPlan,
    first_of_class,
    simulation_plan,
)
from qt_backtest.sweep.grid import Grid, apply_parameters
from qt_backtest.sweep.overfitting import (
    PBOResult,
    WalkForwardSelection,
    expected_max_sharpe,
    plateau_selection,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    walk_forward_selection,
)
from qt_backtest.sweep.streams_nb import streams_nb

# packed scalars each precomputed layer depends on (weights travel separately)
META_SCALARS = ("fidelity", "padding_confidence", "regime_volatility", "trend_strength")
# the score reads the component weights and thresholds and the neutral inputs: two runs of
# the packed vector, taken from its one definition
SCORE_SCALARS = (
    "fidelity",
    *SCALARS[INDEX["rsi_weight"] : INDEX["momentum_scale_factor"] + 1],
    *SCALARS[INDEX["neutral_rsi"] : INDEX["neutral_momentum"] + 1],
)
# bars from which the buy-and-hold reference's memory is collected before the sweep runs
COLLECT_AT_BARS = 250_000
# Layer 1's decision from its vote, and the Arbiter's verdict from its score: when these vary
# too, the layer is recomputed per combination
BASE_SCALARS = SCALARS[INDEX["confidence_cap"] : INDEX["multiplier_weak"] + 1]
VERDICT_SCALARS = (
    "fidelity",
    "score_threshold",
    *SCALARS[INDEX["base_confidence"] : INDEX["intended_hold_high"] + 1],
    "deployed_wiring",
)
METRICS = (
    "total_return",
    "cagr",
    "annualized_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_bars",
    "max_drawdown_duration",
    "ruined",
    "ruin_bar",
    "ruined_at",
    "calmar",
    "trades",
    "win_rate",
    "profit_factor",
    "average_trade",
    "exposure",
    "turnover",
    "fees_paid",
    "periods_per_year",
)
RATES = (
    "escalation_rate",
    "defer_rate",
    "arbiter_invocation_rate",
    "override_rate_when_called",
    "arbiter_source_share",
    "risk_veto_rate",
)


@dataclass(frozen=True)
class Combinations:
    """A grid packed for the kernel (one row per combination)."""

    grid: Grid
    configs: tuple[HierarchyConfig, ...]
    rules: tuple[PositionRules, ...]
    params: np.ndarray
    weights: np.ndarray
    meta_models: np.ndarray
    meta_weights: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    rule_matrix: np.ndarray
    inline_votes: bool
    inline_meta: bool
    inline_score: bool

    def chunk(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The kernel's per-combination arrays of combinations ``start`` to ``stop``."""
        return {
            "params": self.params[start:stop],
            "weights": self.weights[start:stop],
            "meta_weights": self.meta_weights[start:stop],
            "rules": self.rule_matrix[start:stop],
        }

    def rows(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        """The kernel's per-combination arrays of the combinations at ``positions``."""
        return {
            "params": self.params[positions],
            "weights": self.weights[positions],
            "meta_weights": self.meta_weights[positions],
            "rules": self.rule_matrix[positions],
        }


#: Position rules the fused kernel does not model yet, with the reason: a sweep refuses any
#: value of them but the default rather than score combinations under other rules.
UNSUPPORTED_RULES = {
    "size_granularity": "its kernel trades fractional units",
    "close_at_end": "its kernel leaves the last position open",
}


def unsupported_rules(rules: PositionRules) -> list[str]:
    """The fields of ``rules`` set to something a sweep cannot honour (see
    :data:`UNSUPPORTED_RULES`); empty when a sweep can run them."""
    default = PositionRules()
    return [name for name in UNSUPPORTED_RULES if getattr(rules, name) != getattr(default, name)]


def check_sweep_rules(rules: PositionRules) -> None:
    """Raise a ValueError naming the first field of ``rules`` a sweep cannot honour."""
    for name in unsupported_rules(rules):
        default = getattr(PositionRules(), name)
        raise ValueError(
            f"the sweep does not support {name} yet ({UNSUPPORTED_RULES[name]}); got "
            f"{name}={getattr(rules, name)!r}: leave rules.{name} at its default ({default!r}) "
            f"for a sweep, and simulate the chosen combination with it (simulate, compare_modes)"
        )


def _rule_row(rules: PositionRules) -> list[float]:
    row = [0.0] * nb.RULE_COLUMNS
    row[nb.R_LONG_ONLY] = float(rules.long_only)
    row[nb.R_HOLD_FLAT] = 1.0 if rules.hold == "flat" else 0.0
    row[nb.R_MAX_HOLD] = float(rules.max_hold_bars or 0)
    row[nb.R_SIZE] = float(rules.size)
    row[nb.R_SCALE] = float(rules.scale_by_confidence)
    row[nb.R_LAG] = float(rules.execution_lag)
    row[nb.R_FEE] = float(rules.fee)
    row[nb.R_SLIPPAGE] = rules.slippage_bps / 10_000.0
    row[nb.R_FILL_AT_OPEN] = 1.0 if rules.fill_price == "open" else 0.0
    row[nb.R_MAINTENANCE] = float(rules.maintenance_margin)
    return row


def _split_combination(combination: Mapping[str, Any]) -> tuple[tuple, tuple]:
    """A combination's hierarchy part and rules part, each as (key, parameters): the key holds
    the part's items with every value's type (``True`` and ``1`` are not the same setting), or,
    for a value that cannot be hashed, the combination's identity (never shared)."""
    hierarchy: dict[str, Any] = {}
    rule_part: dict[str, Any] = {}
    for name, value in combination.items():
        (rule_part if name.startswith("rules.") else hierarchy)[name] = value
    parts = []
    for part in (hierarchy, rule_part):
        key: Any = tuple((name, type(value), value) for name, value in part.items())
        try:
            hash(key)
        except TypeError:
            key = ("unshared", id(combination))
        parts.append((key, part))
    return parts[0], parts[1]


def _varies(matrix: np.ndarray) -> bool:
    return bool((matrix != matrix[:1]).any()) if len(matrix) else False


def pack_grid(
    grid: Grid,
    config: HierarchyConfig | None = None,
    rules: PositionRules | None = None,
    uncertainty_model: Any = None,
) -> Combinations:
    """Configurations of every combination, validated and packed for the kernel."""
    config = config or HierarchyConfig()
    rules = rules or PositionRules()
    configs, rule_sets, packed = [], [], []
    # a grid repeats each value of a parameter in many combinations: the configuration of each
    # distinct hierarchy part and of each distinct rules part is built (and checked) once
    known_configs: dict[Any, tuple[HierarchyConfig, PackedConfig]] = {}
    known_rules: dict[Any, PositionRules] = {}
    for position, combination in enumerate(grid.combinations):
        (hierarchy_key, hierarchy), (rules_key, rule_part) = _split_combination(combination)
        try:
            if hierarchy_key not in known_configs:
                combo_config = apply_parameters(config, rules, hierarchy)[0]
                known_configs[hierarchy_key] = (combo_config, pack(combo_config, uncertainty_model))
            if rules_key not in known_rules:
                combo_rules = apply_parameters(config, rules, rule_part)[1]
                check_sweep_rules(combo_rules)
                known_rules[rules_key] = combo_rules
        except (TypeError, ValueError) as error:
            raise ValueError(f"combination {position} {combination}: {error}") from None
        configs.append(known_configs[hierarchy_key][0])
        packed.append(known_configs[hierarchy_key][1])
        rule_sets.append(known_rules[rules_key])
    fixed = {(r.fill_price, r.init_cash) for r in rule_sets}
    if len(fixed) > 1:
        raise ValueError("fill_price and init_cash must be the same for every combination")
    first: PackedConfig = packed[0]
    if any(not np.array_equal(p.meta_models, first.meta_models) for p in packed):
        raise ValueError("every combination must give Meta's weight table the same models")
    params = np.stack([p.scalars for p in packed])
    weights = np.stack([p.weights for p in packed])
    meta_weights = np.stack([p.meta_weights for p in packed])
    meta_columns = [INDEX[name] for name in META_SCALARS]
    score_columns = [INDEX[name] for name in SCORE_SCALARS + VERDICT_SCALARS]
    base_columns = [INDEX[name] for name in BASE_SCALARS]
    return Combinations(
        grid=grid,
        configs=tuple(configs),
        rules=tuple(rule_sets),
        params=params,
        weights=weights,
        meta_models=first.meta_models,
        meta_weights=meta_weights,
        coef=first.coef,
        intercept=first.intercept,
        rule_matrix=np.array([_rule_row(r) for r in rule_sets], dtype=np.float64),
        inline_votes=_varies(weights) or _varies(params[:, base_columns]),
        inline_meta=_varies(params[:, meta_columns]) or _varies(meta_weights),
        inline_score=_varies(params[:, score_columns]),
    )


@dataclass(frozen=True)
class SymbolInputs:
    """One symbol's arrays for the kernel."""

    symbol: str
    index: pd.DatetimeIndex
    bar_inputs: np.ndarray
    actions: np.ndarray
    confidences: np.ndarray
    active: np.ndarray
    indicators: np.ndarray
    periods_per_year: float

    def digest(self) -> str:
        hasher = hashlib.sha256()
        for array in (
            self.bar_inputs,
            self.actions,
            self.confidences,
            self.active,
            self.indicators,
        ):
            hasher.update(np.ascontiguousarray(array).tobytes())
        return hasher.hexdigest()


def symbol_inputs(
    symbol: str,
    bars: pd.DataFrame,
    votes: pd.DataFrame,
    indicators: pd.DataFrame | None,
    combinations: Combinations,
    interval: str | pd.Timedelta | None = None,
) -> SymbolInputs:
    """Validate one symbol's bars, votes and indicators and precompute its per-bar inputs on
    the evaluation window (first to last bar with a model vote; see
    :mod:`qt_backtest.backtest.window`)."""
    validate_ohlcv(bars, source=bars.attrs.get("source") or symbol or None, check_interval=False)
    if not votes.index.equals(bars.index):
        raise ValueError(
            f"{symbol or 'votes'}: votes must be indexed like the bars (one row per bar)"
        )
    config = combinations.configs[0]
    try:
        first, stop = evaluation_window(votes, config.models)
    except ValueError as error:
        raise ValueError(f"{symbol or 'votes'}: {error}") from None
    bars, votes = bars.iloc[first:stop], votes.iloc[first:stop]
    message = coverage_message(model_coverage(votes, config.models), config.fidelity, symbol)
    if message:
        warnings.warn(message, CoverageWarning, stacklevel=3)
    actions, confidences, active = prediction_arrays(votes, config.models)
    inputs = indicator_array(indicators, votes.index)
    # column by column: the decision loops read a few columns over many bars
    bar_inputs = np.empty((len(bars), nb.BAR_COLUMNS), order="F")
    prices = {
        name: bars[column].to_numpy(dtype=np.float64)
        for name, column in (
            ("fill", combinations.rules[0].fill_price),
            ("close", "close"),
            ("open", "open"),
            ("low", "low"),
            ("high", "high"),
        )
    }
    nb.bar_inputs_nb(
        nb.BarSources(actions, confidences, active, inputs, **prices),
        nb.LayerValues(
            combinations.params[0],
            combinations.weights[0],
            combinations.meta_models,
            combinations.meta_weights[0],
            combinations.coef,
            combinations.intercept,
        ),
        bar_inputs,
    )
    return SymbolInputs(
        symbol,
        bars.index,
        bar_inputs,
        actions,
        confidences,
        active,
        inputs,
        periods_per_year(bars.index, interval),
    )


def block_edges(bars: int, blocks: int) -> np.ndarray:
    """Bar boundaries of ``blocks`` contiguous, nearly equal time blocks."""
    if not (isinstance(blocks, int) and blocks >= 1):
        raise ValueError(f"blocks must be an integer >= 1, got {blocks!r}")
    if bars < blocks:
        raise ValueError(f"{bars} bars cannot be split into {blocks} time blocks")
    return np.linspace(0, bars, blocks + 1).round().astype(np.int64)


def period_edges(index: pd.DatetimeIndex, period: str | pd.Timedelta | None) -> np.ndarray:
    """Bar boundaries of the return periods of ``index``: 0, the first bar of each period
    after the first (periods counted from midnight UTC), and the number of bars. With
    ``period`` None, one period of every bar."""
    bars = len(index)
    if period is None:
        return np.array([0, bars], dtype=np.int64)
    labels = index.floor(check_period(period)).asi8
    starts = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    return np.concatenate([[0], starts, [bars]]).astype(np.int64)


def run_chunk(
    inputs: SymbolInputs,
    chunk: Mapping[str, np.ndarray],
    combinations_flags: tuple[bool, bool, bool],
    meta_models: np.ndarray,
    coef: np.ndarray,
    intercept: np.ndarray,
    init_cash: float,
    edges: np.ndarray,
    periods_edges: np.ndarray | None = None,
    out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the kernel on one chunk of combinations: ``(stats, blocks, periods)``, written
    into ``out`` when given (zeroed arrays of those shapes)."""
    count = chunk["params"].shape[0]
    if periods_edges is None:
        periods_edges = np.array([0, inputs.bar_inputs.shape[0]], dtype=np.int64)
    if out is None:
        out = (
            np.zeros((count, nb.STAT_COLUMNS)),
            np.zeros((count, len(edges) - 1, nb.BLOCK_COLUMNS)),
            np.zeros((count, len(periods_edges) - 1)),
        )
    stats, blocks, periods = out
    kernel_inputs = _kernel_inputs(
        inputs, chunk, meta_models, coef, intercept, edges, periods_edges
    )
    nb.sweep_nb(
        kernel_inputs, stats, blocks, periods, float(init_cash), *_layer_flags(combinations_flags)
    )
    return stats, blocks, periods


def _layer_flags(flags: tuple[bool, bool, bool]) -> tuple[bool | None, ...]:
    # None lets Numba compile the layer's per-combination code out of the kernel
    return tuple(True if flag else None for flag in flags)


def _kernel_inputs(
    inputs: SymbolInputs,
    chunk: Mapping[str, np.ndarray],
    meta_models: np.ndarray,
    coef: np.ndarray,
    intercept: np.ndarray,
    edges: np.ndarray,
    periods_edges: np.ndarray,
) -> nb.SweepInputs:
    return nb.SweepInputs(
        inputs.bar_inputs,
        inputs.actions,
        inputs.confidences,
        inputs.active,
        inputs.indicators,
        np.ascontiguousarray(chunk["params"]),
        np.ascontiguousarray(chunk["weights"]),
        meta_models,
        np.ascontiguousarray(chunk["meta_weights"]),
        coef,
        intercept,
        np.ascontiguousarray(chunk["rules"]),
        edges,
        periods_edges,
    )


def decision_pass(
    inputs: SymbolInputs,
    combinations: Combinations,
    positions: np.ndarray,
    bars: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The decision pass (:func:`qt_backtest.sweep.streams_nb.streams_nb`) of the combinations
    at ``positions`` over the first ``bars`` bars (all by default): their statistics (decision
    counts and stream hashes filled) and exact order-stream keys, shape (len(positions), 2)."""
    count = len(positions)
    stats = np.zeros((count, nb.STAT_COLUMNS))
    keys = np.empty((count, 2), dtype=np.uint64)
    if bars is not None and bars < inputs.bar_inputs.shape[0]:
        inputs = SymbolInputs(
            inputs.symbol,
            inputs.index[:bars],
            inputs.bar_inputs[:bars],
            inputs.actions[:bars],
            inputs.confidences[:bars],
            inputs.active[:bars],
            inputs.indicators[:bars],
            inputs.periods_per_year,
        )
    edges = np.array([0, inputs.bar_inputs.shape[0]], dtype=np.int64)
    kernel_inputs = _kernel_inputs(
        inputs,
        combinations.rows(positions),
        combinations.meta_models,
        combinations.coef,
        combinations.intercept,
        edges,
        edges,
    )
    flags = (combinations.inline_votes, combinations.inline_meta, combinations.inline_score)
    deciders = first_of_class(
        np.column_stack([kernel_inputs.params, kernel_inputs.weights, kernel_inputs.meta_weights])
    )
    streams_nb(kernel_inputs, deciders, stats, keys, *_layer_flags(flags))
    return stats, keys


def stream_classes(stats: np.ndarray, rules: np.ndarray) -> np.ndarray:
    """For each combination, the first combination that sends the same orders under the same
    position rules and costs: rows of one class have identical equity curves, so they are one
    trial, not several.

    Parameters
    ----------
    stats : ndarray, shape (combinations, STAT_COLUMNS)
    rules : ndarray, shape (combinations, RULE_COLUMNS)

    Returns
    -------
    ndarray of int64, shape (combinations,)
    """
    keys = np.column_stack([stats[:, nb.S_STREAM_A], stats[:, nb.S_STREAM_B], rules])
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)].astype(np.int64)


def metrics_from_stats(
    stats: np.ndarray, bars: int, init_cash: float, per_year: float, index: pd.Index
) -> pd.DataFrame:
    """The metrics of :func:`qt_backtest.backtest.metrics.performance` and the rollout rates,
    one row per combination, from the kernel's statistics."""
    s = stats
    n = float(bars)
    mean = s[:, nb.S_SUM] / n
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        variance = (s[:, nb.S_SUMSQ] - s[:, nb.S_SUM] * mean) / (n - 1.0) if bars > 1 else np.nan
        std = np.sqrt(np.maximum(variance, 0.0))
        # equal returns, up to the rounding of the kernel's running sums
        std = np.where(negligible_spread(std, mean, n), 0.0, std)
        annual = np.sqrt(per_year)
        downside = np.sqrt(s[:, nb.S_DOWNSIDE] / n)
        growth = s[:, nb.S_FINAL_VALUE] / init_cash
        years = n / per_year
        ruin_bar = s[:, nb.S_RUIN_BAR].astype(np.int64)
        ruined = ruin_bar >= 0
        cagr = np.where(growth > 0, np.abs(growth) ** (1.0 / years) - 1.0, np.nan)
        cagr = np.where(ruined & ~(growth > 0), -1.0, cagr)
        max_drawdown = s[:, nb.S_MAX_DRAWDOWN]
        trades = s[:, nb.S_TRADES]
        start = s[:, nb.S_DRAWDOWN_START].astype(np.int64)
        stop = np.minimum(s[:, nb.S_DRAWDOWN_STOP].astype(np.int64), bars - 1)
        has_drawdown = s[:, nb.S_DRAWDOWN_BARS] > 0
        duration = pd.to_timedelta(
            np.where(
                has_drawdown,
                (index[stop] - index[np.maximum(start - 1, 0)]).to_numpy(),
                np.timedelta64(0, "ns"),
            )
        )
        meta_ran = s[:, nb.S_META_RAN]
        calls = s[:, nb.S_ARBITER_CALLS]
        frame = pd.DataFrame(
            {
                "total_return": growth - 1.0,
                "cagr": cagr,
                "annualized_volatility": std * annual,
                "sharpe": sharpe_ratio(mean, std, n, annual),
                "sortino": np.where(downside > 0, mean / downside * annual, np.nan),
                "max_drawdown": max_drawdown,
                "ruined": ruined,
                "ruin_bar": ruin_bar,
                "ruined_at": index[np.maximum(ruin_bar, 0)].where(ruined),
                "max_drawdown_bars": s[:, nb.S_DRAWDOWN_BARS].astype(np.int64),
                "max_drawdown_duration": duration,
                "calmar": np.where(max_drawdown < 0, cagr / np.abs(max_drawdown), np.nan),
                "trades": trades.astype(np.int64),
                "win_rate": np.where(trades > 0, s[:, nb.S_WINS] / trades, np.nan),
                "profit_factor": np.where(
                    s[:, nb.S_LOSSES] > 0, s[:, nb.S_WIN_SUM] / -s[:, nb.S_LOSS_SUM], np.nan
                ),
                "average_trade": np.where(trades > 0, s[:, nb.S_PNL_SUM] / trades, np.nan),
                "exposure": s[:, nb.S_EXPOSED] / n,
                "turnover": s[:, nb.S_TRADED] / (s[:, nb.S_VALUE_SUM] / n),
                "fees_paid": s[:, nb.S_FEES],
                "periods_per_year": per_year,
                "escalation_rate": np.where(
                    meta_ran > 0, s[:, nb.S_ESCALATIONS] / meta_ran, np.nan
                ),
                "defer_rate": np.where(
                    meta_ran > 0, (meta_ran - s[:, nb.S_ESCALATIONS]) / meta_ran, np.nan
                ),
                "arbiter_invocation_rate": np.where(meta_ran > 0, calls / meta_ran, np.nan),
                "override_rate_when_called": np.where(
                    calls > 0, s[:, nb.S_OVERRIDES] / calls, np.nan
                ),
                "arbiter_source_share": s[:, nb.S_OVERRIDES] / n,
                "risk_veto_rate": s[:, nb.S_VETOES] / n,
                "skewness": _skewness(s, n),
                "kurtosis": _kurtosis(s, n),
                "bars": bars,
            }
        )
    return frame


def _central_moments(s: np.ndarray, n: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Population central moments 2 to 4 of the bar returns from the kernel's power sums;
    the second is 0 where its spread is rounding noise (then skewness and kurtosis are NaN)."""
    mean = s[:, nb.S_SUM] / n
    raw2 = s[:, nb.S_SUMSQ] / n
    raw3 = s[:, nb.S_SUM3] / n
    raw4 = s[:, nb.S_SUM4] / n
    m2 = raw2 - mean**2
    m2 = np.where(negligible_spread(np.sqrt(np.maximum(m2, 0.0)), mean, n), 0.0, m2)
    m3 = raw3 - 3 * mean * raw2 + 2 * mean**3
    m4 = raw4 - 4 * mean * raw3 + 6 * mean**2 * raw2 - 3 * mean**4
    return m2, m3, m4


def _skewness(s: np.ndarray, n: float) -> np.ndarray:
    """Skewness of bar returns (population moments)."""
    m2, m3, _ = _central_moments(s, n)
    return np.where(m2 > 0, m3 / np.maximum(m2, 1e-300) ** 1.5, np.nan)


def _kurtosis(s: np.ndarray, n: float) -> np.ndarray:
    """Kurtosis of bar returns (not excess: 3 for a normal distribution)."""
    m2, _, m4 = _central_moments(s, n)
    return np.where(m2 > 0, m4 / np.maximum(m2, 1e-300) ** 2, np.nan)


@dataclass
class SweepResult:
    """Results of a sweep.

    Attributes
    ----------
    frame : DataFrame
        One row per combination x symbol: ``symbol``, ``combination`` (position in the grid),
        the grid's parameters, every backtest metric, the rollout rates, and the skewness and
        kurtosis of bar returns.
    blocks : dict of symbol to ndarray, shape (combinations, blocks, 3)
        Per time block: sum and sum of squares of bar returns, and growth of equity.
    block_edges : dict of symbol to ndarray
        Bar boundaries of the blocks.
    grid : Grid
    reference : DataFrame
        Buy-and-hold of each symbol on the same bars (the evaluation window) under the sweep's
        base rules: ``symbol``, ``run`` and the backtest metrics, a row to rank against.
    periods : dict of symbol to ndarray, shape (combinations, periods)
        Each combination's return per period (see :meth:`period_returns`), built on each
        access from ``stream_periods`` (combinations x periods floats per symbol).
    stream_periods : dict of symbol to ndarray, shape (streams, periods)
        The period returns of each simulated combination (S-DUP-1): combinations with
        identical equity curves share one row.
    period_rows : dict of symbol to ndarray of int64, shape (combinations,)
        Each combination's row of ``stream_periods``.
    period_index : dict of symbol to DatetimeIndex
        Start of each period.
    period : str or None
        The period length (None: no period returns were kept).
    reference_periods : dict of symbol to DataFrame
        Period returns of ``ensemble`` (ensemble-only at the base configuration and rules)
        and ``buy_and_hold``, the benchmarks of :meth:`superiority`.
    computed_chunks, loaded_chunks : int
        Chunks run by the kernel and chunks read back from ``cache_dir``.
    streams : dict of symbol to int
        Combinations simulated per symbol: one per class of identical equity curves (all of
        them when the sweep ran with ``dedup=False``).
    """

    frame: pd.DataFrame
    blocks: dict[str, np.ndarray]
    block_edges: dict[str, np.ndarray]
    index: dict[str, pd.DatetimeIndex]
    grid: Grid
    reference: pd.DataFrame = field(default_factory=pd.DataFrame)
    stream_periods: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    period_rows: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    period_index: dict[str, pd.DatetimeIndex] = field(default_factory=dict, repr=False)
    period: str | None = None
    reference_periods: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    computed_chunks: int = 0
    loaded_chunks: int = 0
    configs: tuple[HierarchyConfig, ...] = field(default=(), repr=False)
    streams: dict[str, int] = field(default_factory=dict)

    def ranked(self, metric: str = "sharpe", symbol: str | None = None) -> pd.DataFrame:
        """Rows best first by ``metric``: closed-out (ruined) combinations last whatever their
        metric, then rows whose metric is NaN. ``symbol`` keeps one symbol's rows."""
        frame = self.frame if symbol is None else self.frame[self.frame["symbol"] == symbol]
        return rank_rows(frame, metric)

    @property
    def periods(self) -> dict[str, np.ndarray]:
        return {symbol: self._periods_of(symbol) for symbol in self.stream_periods}

    def _periods_of(self, symbol: str) -> np.ndarray:
        return self.stream_periods[symbol][self.period_rows[symbol]]

    def period_returns(self, symbol: str) -> pd.DataFrame:
        """Returns per period of every combination on ``symbol``: rows periods (labelled by
        their start), columns combinations (positions in the grid). They equal the period
        returns of each combination's equity curve
        (:func:`qt_backtest.inference.period_returns`)."""
        if self.period is None:
            raise ValueError("this sweep kept no period returns (it ran with period=None)")
        if symbol not in self.stream_periods:
            raise KeyError(
                f"no symbol {symbol!r} in this sweep (symbols: {list(self.stream_periods)})"
            )
        return pd.DataFrame(
            self._periods_of(symbol).T, index=self.period_index[symbol], copy=False
        ).rename_axis(index="period", columns="combination")

    def superiority(
        self,
        benchmark: str = "ensemble",
        *,
        size: float = 0.05,
        draws: int = 1000,
        block_length: float | None = None,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Does any combination beat ``benchmark`` (``"ensemble"``: ensemble-only at the base
        configuration, or ``"buy_and_hold"``) in mean period return beyond chance, and which?

        Per symbol: the SPA test's ``spa_lower``, ``spa_consistent`` and ``spa_upper``
        p-values, White's ``reality_check`` p-value, ``better`` (how many combinations
        StepM declares better at family-wise error rate ``size``) and ``better_combinations``
        (their positions in the grid), ``distinct`` (distinct return series tested),
        ``periods`` and ``years`` of returns, and ``min_backtest_years``: the minimum backtest
        length (Bailey, Borwein, López de Prado and Zhu) below which the best combination's
        annualised Sharpe ratio is what the best of ``distinct`` skill-less trials would show
        by chance. See :func:`qt_backtest.inference.multiple.beat_benchmark`."""
        from qt_backtest.inference.multiple import beat_benchmark

        if self.period is None:
            raise ValueError("this sweep kept no period returns (it ran with period=None)")
        rows = []
        for position, symbol in enumerate(self.stream_periods):
            references = self.reference_periods[symbol]
            if benchmark not in references.columns:
                raise ValueError(
                    f"benchmark must be one of {list(references.columns)}, got {benchmark!r}"
                )
            # one column per simulated stream: equal columns are one trial in the tests anyway
            returns = pd.DataFrame(
                self.stream_periods[symbol].T, index=self.period_index[symbol], copy=False
            )
            period_rows = self.period_rows[symbol]
            result = beat_benchmark(
                returns,
                references[benchmark],
                size=size,
                draws=draws,
                block_length=block_length,
                seed=seed + position,
            )
            winners = np.isin(period_rows, np.asarray(result.better, dtype=np.int64))
            better = [int(c) for c in np.flatnonzero(winners)]
            years = len(returns) / period_count_per_year(returns.index, self.period)
            best = float(self.frame.loc[self.frame["symbol"] == symbol, "sharpe"].max())
            needed = (
                min_backtest_length(result.distinct, best)
                if result.distinct >= 2 and best > 0
                else np.nan
            )
            rows.append(
                {
                    "symbol": symbol,
                    "benchmark": benchmark,
                    "spa_lower": result.spa.pvalues["lower"],
                    "spa_consistent": result.spa.pvalues["consistent"],
                    "spa_upper": result.spa.pvalues["upper"],
                    "reality_check": result.reality_check,
                    "better": len(better),
                    "better_combinations": better,
                    "distinct": result.distinct,
                    "periods": len(returns),
                    "years": years,
                    "min_backtest_years": needed,
                    "size": size,
                }
            )
        return pd.DataFrame(rows)

    def counts(self, symbol: str) -> np.ndarray:
        """Bars per time block of ``symbol``."""
        return np.diff(self.block_edges[symbol])

    def overfitting(
        self,
        metric: str = "sharpe",
        *,
        train_blocks: int | None = None,
        anchored: bool = False,
        radius: int = 1,
        max_splits: int | None = None,
    ) -> dict[str, OverfittingReport]:
        """Overfitting controls per symbol: PBO (CSCV over the sweep's time blocks), the
        deflated Sharpe ratio of the best combination, plateau selection and walk-forward
        selection (``train_blocks`` blocks in sample, by default 4 or half the blocks if
        fewer). See :mod:`qt_backtest.sweep.overfitting`."""
        return {
            symbol: overfitting_report(
                self, symbol, metric, train_blocks, anchored, radius, max_splits
            )
            for symbol in self.blocks
        }


def rank_rows(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``frame`` sorted best first by ``metric``, ruined rows last, NaN before them."""
    if metric not in frame.columns:
        raise ValueError(f"unknown metric {metric!r}: choose one of the sweep's columns")
    order = np.lexsort(
        (
            -np.nan_to_num(frame[metric].to_numpy(dtype=np.float64), nan=-np.inf),
            frame[metric].isna().to_numpy(),
            frame["ruined"].to_numpy(dtype=bool),
        )
    )
    return frame.iloc[order]


def _survivors_scored(frame: pd.DataFrame, column: str) -> np.ndarray:
    """``column`` with ruined rows at -inf: they never win a selection."""
    values = frame[column].to_numpy(dtype=np.float64).copy()
    values[frame["ruined"].to_numpy(dtype=bool)] = -np.inf
    return values


@dataclass(frozen=True)
class OverfittingReport:
    """Overfitting controls of one symbol's sweep.

    Attributes
    ----------
    metric : str
        What "best" means (``sharpe`` or ``total_return``).
    trials : int
        Distinct trials: combinations with different equity curves (one per stream class,
        see :func:`stream_classes`). PBO and the deflated Sharpe ratio count these.
    rows : int
        Combinations of the grid, identical ones included.
    best : Series
        The best combination's row of the sweep frame (by ``metric`` on the whole sample).
    pbo : PBOResult
        CSCV over the time blocks.
    deflated_sharpe : float
        Probability that the Sharpe-best combination's skill is real after ``trials`` trials.
    best_sharpe_per_bar, expected_max_sharpe_per_bar : float
        Its per-bar Sharpe and the largest one expected from ``trials`` skill-less trials.
    plateau : DataFrame
        Neighbourhood medians, best first (see :func:`plateau_selection`).
    plateau_choice : Series
        The sweep row of the best plateau.
    walk_forward : WalkForwardSelection
    """

    symbol: str
    metric: str
    trials: int
    rows: int
    best: pd.Series
    pbo: PBOResult
    deflated_sharpe: float
    best_sharpe_per_bar: float
    expected_max_sharpe_per_bar: float
    plateau: pd.DataFrame
    plateau_choice: pd.Series
    walk_forward: WalkForwardSelection

    def summary(self) -> dict[str, Any]:
        """The headline numbers, for tables and reports."""
        return {
            "symbol": self.symbol,
            "metric": self.metric,
            "trials": self.trials,
            "grid_rows": self.rows,
            "best_combination": int(self.best["combination"]),
            f"best_{self.metric}": float(self.best[self.metric]),
            "pbo": self.pbo.pbo,
            "cscv_splits": self.pbo.splits,
            "deflated_sharpe": self.deflated_sharpe,
            "plateau_combination": int(self.plateau_choice["combination"]),
            f"plateau_{self.metric}": float(self.plateau_choice[self.metric]),
            "walk_forward_oos_sharpe_per_bar": self.walk_forward.out_of_sample_sharpe,
            "walk_forward_is_sharpe_per_bar": self.walk_forward.in_sample_sharpe,
            "walk_forward_oos_return": float(self.walk_forward.out_of_sample_return),
        }


def _distinct_rows(frame: pd.DataFrame) -> np.ndarray:
    """Positions of the first row of each stream class (all rows when there is no class)."""
    if "stream" not in frame.columns:
        return np.arange(len(frame))
    return np.flatnonzero(frame["stream"].to_numpy() == frame["combination"].to_numpy())


def _pbo(moments: np.ndarray, counts: np.ndarray, metric: str, max_splits: int | None):
    """CSCV over distinct trials; with fewer than two there is nothing to overfit (NaN)."""
    if len(moments) < 2:
        empty = np.empty(0)
        return PBOResult(np.nan, empty, empty, empty, np.empty(0, dtype=np.int64))
    return probability_of_backtest_overfitting(moments, counts, metric, max_splits)


def overfitting_report(
    result: SweepResult,
    symbol: str,
    metric: str = "sharpe",
    train_blocks: int | None = None,
    anchored: bool = False,
    radius: int = 1,
    max_splits: int | None = None,
) -> OverfittingReport:
    """See :meth:`SweepResult.overfitting`."""
    if train_blocks is None:
        train_blocks = min(4, max(1, (len(result.block_edges[symbol]) - 1) // 2))
    frame = result.frame[result.frame["symbol"] == symbol].reset_index(drop=True)
    moments = result.blocks[symbol]
    counts = result.counts(symbol)
    values = frame[metric].to_numpy(dtype=np.float64)
    if not np.isfinite(values).any():
        raise ValueError(f"{symbol}: no combination has a finite {metric}")
    best = rank_rows(frame, metric).iloc[0]
    per_bar = frame["sharpe"].to_numpy(dtype=np.float64) / np.sqrt(frame["periods_per_year"])
    survivors = _survivors_scored(frame, "sharpe") / np.sqrt(frame["periods_per_year"])
    sharpe_best = frame.iloc[int(np.argmax(np.where(np.isnan(survivors), -np.inf, survivors)))]
    # rows of one stream class are one trial: identical equity curves tried twice are not
    # two chances of luck
    distinct = _distinct_rows(frame)
    finite = per_bar[distinct][np.isfinite(per_bar[distinct])]
    variance = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0
    best_per_bar = float(sharpe_best["sharpe"] / np.sqrt(sharpe_best["periods_per_year"]))
    benchmark = expected_max_sharpe(len(distinct), variance)
    kurtosis = float(sharpe_best["kurtosis"]) if np.isfinite(sharpe_best["kurtosis"]) else 3.0
    skewness = float(sharpe_best["skewness"]) if np.isfinite(sharpe_best["skewness"]) else 0.0
    deflated = probabilistic_sharpe_ratio(
        best_per_bar, benchmark, int(sharpe_best["bars"]), skewness, kurtosis
    )
    # a ruined combination is the worst neighbour a plateau can have
    scored = frame.assign(**{metric: _survivors_scored(frame, metric)})
    plateau = plateau_selection(scored, list(result.grid.names), metric, radius)
    return OverfittingReport(
        symbol=symbol,
        metric=metric,
        trials=len(distinct),
        rows=len(frame),
        best=best,
        pbo=_pbo(moments[distinct], counts, metric, max_splits),
        deflated_sharpe=deflated,
        best_sharpe_per_bar=best_per_bar,
        expected_max_sharpe_per_bar=benchmark,
        plateau=plateau,
        plateau_choice=frame.loc[plateau.index[0]],
        walk_forward=walk_forward_selection(moments, counts, metric, train_blocks, anchored),
    )


def _chunk_key(
    digest: str,
    combinations: Combinations,
    positions: np.ndarray,
    init_cash: float,
    edges: tuple[np.ndarray, np.ndarray],
) -> str:
    hasher = hashlib.sha256(digest.encode())
    for array in combinations.rows(positions).values():
        hasher.update(np.ascontiguousarray(array).tobytes())
    shared = (combinations.meta_models, combinations.coef, combinations.intercept, *edges)
    for array in shared:
        hasher.update(np.ascontiguousarray(array).tobytes())
    hasher.update(repr((init_cash, nb.STAT_COLUMNS, nb.BLOCK_COLUMNS)).encode())
    hasher.update(_KERNEL_VERSION.encode())
    return hasher.hexdigest()[:32]


# the chunk key holds the package version and the kernel's source: chunks stored by another
# version of the kernel are never read
_KERNEL_VERSION = __version__ + hashlib.sha256(Path(nb.__file__).read_bytes()).hexdigest()


def _checksum(*arrays: np.ndarray) -> str:
    hasher = hashlib.sha256()
    for array in arrays:
        hasher.update(repr((array.dtype.str, array.shape)).encode())
        hasher.update(np.ascontiguousarray(array).tobytes())
    return hasher.hexdigest()


def _save(path: Path, stats: np.ndarray, blocks: np.ndarray, periods: np.ndarray) -> None:
    """Write atomically (a killed run never leaves half a chunk behind), with a checksum."""

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as stream:
            np.savez(
                stream,
                stats=stats,
                blocks=blocks,
                periods=periods,
                checksum=_checksum(stats, blocks, periods),
            )

    atomic_write(path, write)


def _load(path: Path, shapes: tuple[tuple[int, ...], ...]) -> tuple | None:
    """A stored chunk, or None (with a warning) when it is unreadable, truncated, of another
    shape or fails its checksum: it is then computed again."""
    try:
        # read whole first: numpy leaves the file open when it fails to parse it
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as stored:
            arrays = tuple(stored[name] for name in ("stats", "blocks", "periods"))
            checksum = str(stored["checksum"])
        problem = None
        found = tuple(array.shape for array in arrays)
        if found != shapes:
            problem = f"shapes {found} instead of {shapes}"
        elif any(array.dtype != np.float64 for array in arrays):
            problem = "not float64"
        elif checksum != _checksum(*arrays):
            problem = "checksum mismatch"
    except Exception as error:
        problem = f"unreadable ({type(error).__name__})"
    if problem is None:
        return arrays
    warnings.warn(f"sweep cache chunk {path.name}: {problem}; computing it again", stacklevel=3)
    return None


def sweep(
    bars: pd.DataFrame | Mapping[str, pd.DataFrame],
    votes: pd.DataFrame | Mapping[str, pd.DataFrame],
    indicators: pd.DataFrame | Mapping[str, pd.DataFrame] | None,
    grid: Grid | Mapping[str, Sequence[Any]],
    *,
    config: HierarchyConfig | None = None,
    rules: PositionRules | None = None,
    modes: Sequence[str] | None = None,
    uncertainty_model: Any = None,
    blocks: int = 16,
    chunk_size: int = 250,
    cache_dir: str | os.PathLike | None = None,
    executor: str = "local",
    address: str | None = None,
    progress: bool = False,
    interval: str | pd.Timedelta | None = None,
    on_chunk: Callable[[str, int], None] | None = None,
    period: str | None = "1D",
    dedup: bool = True,
) -> SweepResult:
    """Decide, trade and score every combination of ``grid`` on every symbol.

    Parameters
    ----------
    bars, votes, indicators : DataFrame or mapping of symbol to DataFrame
        OHLCV bars, model votes (prediction columns, indexed like the bars) and the Arbiter's
        inputs, for one symbol or several (same keys); ``indicators`` may be None (neutral).
    grid : Grid or mapping of parameter to values
        The combinations (a mapping is expanded with :meth:`Grid.product`).
    config, rules : optional
        Everything the grid does not set; the live defaults otherwise.
    modes : sequence of str, optional
        Cross the grid with these hierarchy modes (``ensemble``, ``meta``, ``meta_arbiter``).
    uncertainty_model : fitted MetaUncertaintyModel, optional
        Enables Meta's rule 6 for every combination.
    blocks : int
        Contiguous time blocks whose return moments are kept per combination (for PBO and
        walk-forward selection).
    chunk_size : int
        Combinations per kernel call: the unit of parallel work, progress and resumption.
    cache_dir : path, optional
        Each finished chunk is written there as it completes; a rerun (after a crash, say)
        reads the finished chunks back and computes only the missing ones.
    executor : {"local", "dask"}
        ``"dask"`` runs chunks x symbols on a Dask ``distributed`` cluster: the scheduler at
        ``address``, or a local cluster when it is None (needs the ``dask`` extra).
    progress : bool
        Show a progress bar over chunks.
    interval : str or Timedelta, optional
        Bar interval for annualisation; inferred from each index otherwise.
    on_chunk : callable, optional
        Called with ``(symbol, chunk number)`` after each chunk is stored.
    period : str or None
        Keep each combination's returns per period of this length (``"1D"``: per calendar
        day, UTC), memory periods x combinations, for the multiple-testing verdicts
        (:meth:`SweepResult.period_returns`); None keeps none.
    dedup : bool
        Simulate each distinct order stream once (see :mod:`qt_backtest.sweep.dedup`; results
        are the same either way, :attr:`SweepResult.streams` says how many were simulated).
        False simulates every combination.
    """
    if not isinstance(dedup, bool):
        raise ValueError(f"dedup must be True or False, got {dedup!r}")
    rules = rules or PositionRules()
    config = config or HierarchyConfig()
    grid = _sweep_grid(grid, modes, blocks, period, chunk_size, executor)
    bars, votes, indicators = _by_symbol(bars, votes, indicators)
    combinations = pack_grid(grid, config, rules, uncertainty_model)
    init_cash = combinations.rules[0].init_cash
    prepared = {
        symbol: symbol_inputs(
            symbol, bars[symbol], votes[symbol], indicators[symbol], combinations, interval
        )
        for symbol in bars
    }
    edges = {
        symbol: (block_edges(len(inputs.index), blocks), period_edges(inputs.index, period))
        for symbol, inputs in prepared.items()
    }
    directory = Path(cache_dir) if cache_dir is not None else None
    digests = {}
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        # the inputs' hash, once per symbol (it reads every input array)
        digests = {symbol: inputs.digest() for symbol, inputs in prepared.items()}
    # buy-and-hold before the results are allocated: its simulation's memory and theirs
    # are never needed at once
    held_references = {
        symbol: _buy_and_hold(bars[symbol], inputs.index, rules, interval)
        for symbol, inputs in prepared.items()
    }
    plans = _simulation_plans(prepared, combinations, dedup)
    outputs = _result_arrays({symbol: plan.streams for symbol, plan in plans.items()}, edges)
    paths, bounds, todo, loaded = _plan_chunks(
        chunk_size, plans, directory, digests, combinations, edges, outputs
    )

    def rows(symbol: str, start: int, stop: int) -> dict[str, np.ndarray]:
        return combinations.rows(plans[symbol].simulated[start:stop])

    def finish(symbol: str, number: int, result: tuple[np.ndarray, ...]) -> None:
        start, stop = bounds[symbol, number]
        for target, array in zip(outputs[symbol], result, strict=True):
            if array.base is not target:  # the local executor wrote in place
                target[start:stop] = array
        path = paths[symbol, number]
        if path is not None:
            _save(path, *(target[start:stop] for target in outputs[symbol]))
        if on_chunk is not None:
            on_chunk(symbol, number)

    flags = (combinations.inline_votes, combinations.inline_meta, combinations.inline_score)
    shared = (combinations.meta_models, combinations.coef, combinations.intercept, init_cash)
    bar = _progress(len(todo), progress)
    try:
        if executor == "local":
            for symbol, number, start, stop in todo:
                result = run_chunk(
                    prepared[symbol],
                    rows(symbol, start, stop),
                    flags,
                    *shared,
                    *edges[symbol],
                    out=tuple(target[start:stop] for target in outputs[symbol]),
                )
                finish(symbol, number, result)
                bar.update(1)
        else:
            from qt_backtest.sweep.distributed import run_on_dask

            run_on_dask(todo, prepared, rows, flags, shared, edges, address, finish, bar.update)
    finally:
        bar.close()

    return _sweep_result(
        grid,
        combinations,
        prepared,
        {symbol: _expanded(outputs.pop(symbol), plan) for symbol, plan in plans.items()},
        edges,
        held_references,
        (bars, votes, indicators),
        (config, rules, uncertainty_model, interval, period),
        (len(todo), loaded),
        {symbol: plan.streams for symbol, plan in plans.items()},
    )


def _simulation_plans(
    prepared: Mapping[str, SymbolInputs], combinations: Combinations, dedup: bool
) -> dict[str, SimulationPlan]:
    """Which combinations to simulate on each symbol (S-DUP-1)."""
    return {
        symbol: simulation_plan(
            combinations, inputs.bar_inputs, partial(decision_pass, inputs, combinations), dedup
        )
        for symbol, inputs in prepared.items()
    }


def _expanded(compact: tuple[np.ndarray, ...], plan: SimulationPlan) -> tuple[np.ndarray, ...]:
    """Statistics and block moments of every combination from those of the simulated ones
    (S-DUP-1): each class's row, with each combination's own decision counts. Period returns
    stay one row per simulation (with each combination's row): at a day per period they are
    the largest result."""
    stats, blocks, periods = compact
    if len(plan.source) == len(plan.simulated) and plan.decisions is None:
        return stats, blocks, periods, plan.source  # every combination simulated, in order
    stats, blocks = stats[plan.source], blocks[plan.source]
    if plan.decisions is not None:
        stats[:, DECISION_COLUMNS] = plan.decisions[:, DECISION_COLUMNS]
    return stats, blocks, periods, plan.source


def _sweep_grid(
    grid: Grid | Mapping[str, Sequence[Any]],
    modes: Sequence[str] | None,
    blocks: int,
    period: str | None,
    chunk_size: int,
    executor: str,
) -> Grid:
    """The grid :func:`sweep` runs (crossed with ``modes``), once its arguments are checked."""
    if not isinstance(grid, Grid):
        grid = Grid.product(grid)
    if modes is not None:
        modes = list(modes)
        bad = [mode for mode in modes if mode not in MODES]
        if bad or not modes:
            raise ValueError(f"modes must be among {', '.join(MODES)}, got {modes}")
        grid = grid.cross("mode", modes)
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(
            f"blocks (time blocks kept for the overfitting controls) must be an integer >= 1, "
            f"got {blocks!r}"
        )
    if period is not None:
        check_period(period)
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if executor not in ("local", "dask"):
        raise ValueError(f"executor must be 'local' or 'dask', got {executor!r}")
    return grid


def _by_symbol(bars, votes, indicators) -> tuple[dict, dict, dict]:
    """:func:`sweep`'s inputs as mappings of symbol to frame (one symbol: named by its bars)."""
    if not isinstance(bars, Mapping):
        symbol = frame_symbol(bars)
        bars, votes = {symbol: bars}, {symbol: votes}
        indicators = {symbol: indicators}
    elif indicators is None:
        indicators = dict.fromkeys(bars)
    if not (set(bars) == set(votes) == set(indicators)):
        raise ValueError("bars, votes and indicators must name the same symbols")
    return dict(bars), dict(votes), dict(indicators)


def _result_arrays(
    counts: Mapping[str, int], edges: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> dict:
    """Zeroed (stats, block moments, period returns) of ``counts[symbol]`` simulated
    combinations per symbol: every chunk is written into these, never concatenated."""
    return {
        symbol: (
            np.zeros((counts[symbol], nb.STAT_COLUMNS)),
            np.zeros((counts[symbol], len(block) - 1, nb.BLOCK_COLUMNS)),
            np.zeros((counts[symbol], len(period_edge) - 1)),
        )
        for symbol, (block, period_edge) in edges.items()
    }


def _plan_chunks(chunk_size, plans, directory, digests, combinations, edges, outputs) -> tuple:
    """Which chunks of :func:`sweep` to compute: chunks of each symbol's simulated
    combinations (``plans``) not already finished in ``directory`` (read back into
    ``outputs``). Returns (cache path of each chunk to compute, the rows of ``outputs`` of
    every chunk, the chunks to compute, how many were read back)."""
    init_cash = combinations.rules[0].init_cash
    tasks = [
        (symbol, number, start)
        for symbol, plan in plans.items()
        for number, start in enumerate(range(0, plan.streams, chunk_size))
    ]
    paths: dict[tuple[str, int], Path | None] = {}
    bounds: dict[tuple[str, int], tuple[int, int]] = {}
    todo = []
    loaded = 0
    for symbol, number, start in tasks:
        stop = min(start + chunk_size, plans[symbol].streams)
        bounds[symbol, number] = (start, stop)
        path = None
        if directory is not None:
            positions = plans[symbol].simulated[start:stop]
            key = _chunk_key(digests[symbol], combinations, positions, init_cash, edges[symbol])
            path = directory / f"chunk-{key}.npz"
            shapes = tuple((stop - start, *array.shape[1:]) for array in outputs[symbol])
            stored = _load(path, shapes) if path.exists() else None
            if stored is not None:
                for target, array in zip(outputs[symbol], stored, strict=True):
                    target[start:stop] = array
                loaded += 1
                continue
        paths[symbol, number] = path
        todo.append((symbol, number, start, stop))
    return paths, bounds, todo, loaded


def _sweep_result(
    grid,
    combinations,
    prepared,
    outputs,
    edges,
    held_references,
    frames_in,
    settings,
    chunks,
    streams,
) -> SweepResult:
    """The :class:`SweepResult` of :func:`sweep`'s finished ``outputs``: metrics per
    combination and symbol, and the ensemble and buy-and-hold references. ``prepared`` and
    ``outputs`` are emptied symbol by symbol, so that each symbol's arrays are freed as soon as
    they are read."""
    bars, votes, indicators = frames_in
    config, rules, uncertainty_model, interval, period = settings
    computed, loaded = chunks
    init_cash = combinations.rules[0].init_cash
    frames, block_arrays, period_arrays, period_rows, period_indexes = [], {}, {}, {}, {}
    reference_rows, reference_periods, indexes = [], {}, {}
    for symbol in list(prepared):
        inputs = prepared.pop(symbol)  # its arrays are freed before the references run
        index, per_year = inputs.index, inputs.periods_per_year
        del inputs
        stats, moments, returns, rows = outputs.pop(symbol)
        metrics = metrics_from_stats(stats, len(index), init_cash, per_year, index)
        metrics.insert(0, "stream", stream_classes(stats, combinations.rule_matrix))
        parameters = grid.frame().reset_index()
        parameters.insert(0, "symbol", symbol)
        frames.append(pd.concat([parameters, metrics], axis=1))
        block_arrays[symbol] = moments
        indexes[symbol] = index
        metrics_row, held = held_references.pop(symbol)
        reference_rows.append({"symbol": symbol, "run": "buy_and_hold", **metrics_row})
        if period is None:
            continue
        period_arrays[symbol] = returns
        period_rows[symbol] = rows
        first_bars = edges[symbol][1][:-1]
        period_indexes[symbol] = index[first_bars].floor(check_period(period))
        ensemble = _ensemble_periods(
            symbol,
            bars[symbol],
            votes[symbol],
            indicators[symbol],
            config,
            rules,
            uncertainty_model,
            interval,
            edges[symbol],
        )
        reference_periods[symbol] = pd.DataFrame(
            {
                "ensemble": ensemble,
                "buy_and_hold": period_returns(held, rules.init_cash, period).to_numpy(),
            },
            index=period_indexes[symbol],
        )
    frame = pd.concat(frames, ignore_index=True)
    return SweepResult(
        frame=frame,
        reference=pd.DataFrame(reference_rows),
        reference_periods=reference_periods,
        blocks=block_arrays,
        block_edges={symbol: pair[0] for symbol, pair in edges.items()},
        stream_periods=period_arrays,
        period_rows=period_rows,
        period_index=period_indexes,
        period=period,
        index=indexes,
        grid=grid,
        computed_chunks=computed,
        loaded_chunks=loaded,
        configs=combinations.configs,
        streams=streams,
    )


def _ensemble_periods(
    symbol: str,
    bars: pd.DataFrame,
    votes: pd.DataFrame,
    indicators: pd.DataFrame | None,
    config: HierarchyConfig,
    rules: PositionRules,
    uncertainty_model: Any,
    interval: str | pd.Timedelta | None,
    edges: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Period returns of ensemble-only at the base configuration and rules: one more
    combination through the kernel (equal to its single replay and simulation)."""
    pack = pack_grid(Grid.from_records([{"mode": "ensemble"}]), config, rules, uncertainty_model)
    inputs = symbol_inputs(symbol, bars, votes, indicators, pack, interval)
    flags = (pack.inline_votes, pack.inline_meta, pack.inline_score)
    _, _, periods = run_chunk(
        inputs,
        pack.chunk(0, 1),
        flags,
        pack.meta_models,
        pack.coef,
        pack.intercept,
        pack.rules[0].init_cash,
        *edges,
    )
    return periods[0]


def _buy_and_hold(
    bars: pd.DataFrame,
    index: pd.DatetimeIndex,
    rules: PositionRules,
    interval: str | pd.Timedelta | None,
) -> tuple[dict[str, Any], pd.Series]:
    """Buy-and-hold on the evaluation window under the base rules: metrics and equity."""
    from qt_backtest.backtest.compare import benchmark_rules, buy_and_hold
    from qt_backtest.backtest.simulate import simulate

    window = bars.loc[index]
    held = simulate(window, buy_and_hold(window.index), benchmark_rules(rules), interval=interval)
    metrics, value = held.metrics.to_dict(), held.value
    # a vectorbt portfolio holds reference cycles: collected now, its arrays (0.1 GiB at 1M
    # bars) are not still held when the sweep allocates its results; a full collection takes
    # about 0.1 s, more than smaller arrays are worth
    del held
    if len(window) >= COLLECT_AT_BARS:
        gc.collect()
    return metrics, value


class _NoProgress:
    def update(self, count: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled or total == 0:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="chunk", desc="sweep")
