"""Verdicts on a comparison: does each layer earn its keep, beyond chance?

For each transition of the rollout (Meta on top of the ensemble, the Arbiter on top of Meta,
both on top of the ensemble) and the full hierarchy against the benchmark, per symbol and for
the equal-weight aggregate, :func:`layer_verdicts` tests the paired period returns of the two
runs (same periods, same costs): bootstrap intervals of the differences in Sharpe ratio, mean
return, Sortino ratio and maximum drawdown; Ledoit and Wolf's HAC and bootstrap tests of equal
Sharpe ratios (and the iid test, labelled); the Model Confidence Set of the three stages; the
minimum track record of each run; and how many live periods the rollout's "no Sharpe
degradation" check needs to see a given drop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from qt_backtest.backtest.compare import AGGREGATE, HIERARCHY_RUNS, Comparison, aggregate_value
from qt_backtest.backtest.metrics import sharpe_ratio
from qt_backtest.data.interval import infer_interval
from qt_backtest.inference.multiple import model_confidence_set
from qt_backtest.inference.paired import paired_bootstrap
from qt_backtest.inference.regimes import regime_labels, value_by_regime
from qt_backtest.inference.returns import check_period, period_count_per_year, period_returns
from qt_backtest.inference.sharpe import (
    bootstrap_sharpe_difference_test,
    iid_sharpe_difference_test,
    min_track_record_length,
    rollout_power,
    sharpe_difference_test,
)
from qt_backtest.parameters import document_parameters, param, validate

#: The rollout's transitions: (later run, earlier run, what the later one adds).
LAYER_TRANSITIONS = (
    ("meta", "ensemble", "Meta on top of the ensemble"),
    ("meta_arbiter", "meta", "Arbiter on top of Meta"),
    ("meta_arbiter", "ensemble", "Meta and Arbiter on top of the ensemble"),
)
#: Verdict words: what a difference beyond chance means, and what its absence means.
ADDS, LOSES, UNDECIDED, IDENTICAL = (
    "adds value",
    "loses value",
    "no difference beyond chance",
    "identical returns",
)


def _period(value: str) -> str:
    check_period(value)
    return value


def _drops(value: Any) -> tuple[float, ...]:
    drops = tuple(value)
    if not drops or not all(
        isinstance(d, int | float) and not isinstance(d, bool) and d > 0 for d in drops
    ):
        raise ValueError(f"drops must be positive annualised Sharpe drops, got {value!r}")
    return tuple(float(d) for d in drops)


def _level(default: float, doc: str, rule: str) -> Any:
    return param(
        default, doc=doc, low=0.0, high=1.0, inclusive="neither", unit="probability", rule=rule
    )


@document_parameters
@dataclass(frozen=True)
class VerdictSettings:
    """How verdicts are reached.

    A difference is beyond chance when its interval excludes 0 and the two-sided HAC p-value
    is below ``1 - confidence``.
    """

    confidence: float = _level(0.90, "level of the intervals", rule="T-VERD-2")
    draws: int = param(2000, doc="bootstrap resamples", kind="int", low=1, rule="T-VERD-3")
    block_length: float | None = param(
        None,
        doc="mean block length of the stationary bootstrap (None: automatic, Politis and White)",
        low=1.0,
        high=1e9,
        nullable=True,
        unit="periods",
        rule="T-VERD-3",
    )
    seed: int = param(
        0,
        doc="seed of the resampling: same seed, same verdicts",
        kind="int",
        low=0,
        rule="T-VERD-3",
    )
    period: str = param(
        "1D",
        doc="return period the runs are compared on",
        kind="other",
        check=_period,
        accepts='a duration such as "1D" or "4h"',
        unit="time",
        rule="T-VERD-1",
    )
    benchmark: str = param(
        "buy_and_hold",
        doc="run the full hierarchy is also compared with",
        kind="text",
        rule="T-VERD-1",
    )
    drops: tuple[float, ...] = param(
        (0.25, 0.5, 1.0),
        doc="annualised Sharpe drops the rollout power is given for",
        kind="other",
        check=_drops,
        accepts="numbers > 0",
        unit="annualised Sharpe",
        rule="T-VERD-4",
    )
    power: float = _level(
        0.80, "probability of detecting a drop, for the rollout power", rule="T-VERD-4"
    )
    alpha: float = _level(
        0.05,
        "level of the rollout's one-sided check and of the minimum track record",
        rule="T-VERD-4",
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class Verdicts:
    """Result of :func:`layer_verdicts`.

    Attributes
    ----------
    tests : DataFrame
        Index (symbol, later, earlier): ``transition`` (words), ``sharpe_difference``
        (annualised), ``low``/``high`` (its bootstrap interval), ``p_value`` (HAC, two-sided),
        ``p_value_greater`` (HAC, one-sided: the later run is better), ``bootstrap_p_value``
        (studentised block bootstrap, two-sided), ``iid_p_value`` (assumes independence),
        ``periods``, ``verdict`` and ``sentence``.
    effects : DataFrame
        Index (symbol, later, earlier, metric): see
        :func:`~qt_backtest.inference.paired.paired_bootstrap`.
    track_record : DataFrame
        Index (symbol, run): annualised ``sharpe``, ``periods``, ``skewness``, ``kurtosis``,
        ``min_track_record`` (periods for the Sharpe ratio to exceed 0 at ``1 - alpha``),
        ``min_track_record_years`` and ``enough`` (the record is at least that long).
    power : DataFrame
        Index (symbol, later, earlier, annual_drop): live ``periods``, ``days`` and ``bars``
        the rollout check needs to detect the drop.
    confidence_set : DataFrame
        Index (symbol, run): Model Confidence Set ``pvalue`` and ``included`` for the three
        stages (losses: minus the period returns).
    regimes : DataFrame
        Index (symbol, later, earlier, family, regime, metric): each transition's value within
        volatility terciles and trend regimes decided from past data
        (:func:`~qt_backtest.inference.regimes.value_by_regime`), per symbol.
    returns : dict
        Period returns per symbol (columns: runs).
    settings : VerdictSettings
    """

    tests: pd.DataFrame
    effects: pd.DataFrame
    track_record: pd.DataFrame
    power: pd.DataFrame
    confidence_set: pd.DataFrame
    regimes: pd.DataFrame = field(default_factory=pd.DataFrame)
    returns: dict = field(default_factory=dict, repr=False)
    settings: VerdictSettings = field(default_factory=VerdictSettings)

    @property
    def sentences(self) -> list[str]:
        return list(self.tests["sentence"])


def format_p_value(p_value: float) -> str:
    """``p < 0.001``, ``p = 0.042``, or ``p n/a``."""
    if not np.isfinite(p_value):
        return "p n/a"
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def verdict_word(low: float, high: float, p_value: float, confidence: float) -> str:
    """:data:`ADDS` when the interval is above 0 and the p-value below ``1 - confidence``,
    :data:`LOSES` when it is below 0 likewise, else :data:`UNDECIDED`."""
    significant = np.isfinite(p_value) and p_value < 1.0 - confidence
    if significant and low > 0:
        return ADDS
    if significant and high < 0:
        return LOSES
    return UNDECIDED


def transitions(benchmark: str) -> list[tuple[str, str, str]]:
    """The layer transitions and the full hierarchy against ``benchmark``."""
    label = f"The full hierarchy against {benchmark.replace('_', '-')}"
    extra = [("meta_arbiter", benchmark, label)]
    return [
        *LAYER_TRANSITIONS,
        *(t for t in extra if t[:2] not in {x[:2] for x in LAYER_TRANSITIONS}),
    ]


def comparison_returns(comparison: Comparison, period: str) -> dict[str, pd.DataFrame]:
    """Period returns of every run per symbol, and of the equal-weight aggregate when the
    comparison has several symbols (columns: runs)."""
    runs = list(dict.fromkeys(run for _, run in comparison.results))
    symbols = list(dict.fromkeys(symbol for symbol, _ in comparison.results))
    init_cash = comparison.rules.init_cash
    out = {}
    for symbol in symbols:
        value = pd.concat({run: comparison.results[symbol, run].value for run in runs}, axis=1)
        out[symbol] = period_returns(value, init_cash, period)
    if len(symbols) > 1:
        members = {run: [comparison.results[symbol, run] for symbol in symbols] for run in runs}
        value = pd.concat(
            {run: aggregate_value(results, init_cash) for run, results in members.items()}, axis=1
        )
        out[AGGREGATE] = period_returns(value, init_cash, period)
    return out


def layer_verdicts(comparison: Comparison, settings: VerdictSettings | None = None) -> Verdicts:
    """Verdicts on each transition of a comparison (see the module docstring).

    Parameters
    ----------
    comparison : Comparison
        From :func:`~qt_backtest.backtest.compare.compare_modes`: every run on the same bars.
    settings : VerdictSettings, optional
        Confidence, bootstrap draws, block length, seed, period, benchmark and rollout power
        settings.
    """
    settings = settings or VerdictSettings()
    returns = comparison_returns(comparison, settings.period)
    pairs = transitions(settings.benchmark)
    available = set(next(iter(returns.values())).columns)
    missing = sorted({run for later, earlier, _ in pairs for run in (later, earlier)} - available)
    if missing:
        raise ValueError(f"the comparison has no run named {missing} (runs: {sorted(available)})")
    tests, effects, records, power, sets, regimes = [], [], [], [], [], []
    for position, (symbol, frame) in enumerate(returns.items()):
        if len(frame) < 10:
            raise ValueError(
                f"{symbol}: {len(frame)} {settings.period} periods in the evaluation window; "
                "verdicts need at least 10 (use a shorter period)"
            )
        per_year = period_count_per_year(frame.index, settings.period)
        seed = settings.seed + position  # each symbol its own stream, all fixed by the seed
        table = paired_bootstrap(
            frame,
            [(later, earlier) for later, earlier, _ in pairs],
            per_year,
            draws=settings.draws,
            block_length=settings.block_length,
            confidence=settings.confidence,
            seed=seed,
        )
        effects.append(table.assign(symbol=symbol))
        bars_per_period = _bars_per_period(comparison, symbol, settings.period)
        for later, earlier, label in pairs:
            row = table.loc[(later, earlier, "sharpe")]
            tests.append(
                {"symbol": symbol, "later": later, "earlier": earlier}
                | _test_row(frame[later], frame[earlier], row, label, symbol, per_year, settings)
            )
            variance = tests[-1].pop("variance")
            for drop in settings.drops:
                periods = (
                    rollout_power(
                        variance, drop, per_year, alpha=settings.alpha, power=settings.power
                    )
                    if np.isfinite(variance) and variance > 0
                    else np.nan
                )
                days = periods * check_period(settings.period) / pd.Timedelta(days=1)
                power.append(
                    {
                        "symbol": symbol,
                        "later": later,
                        "earlier": earlier,
                        "annual_drop": drop,
                        "periods": periods,
                        "days": days,
                        "bars": periods * bars_per_period,
                    }
                )
        for run in frame.columns:
            records.append(
                {"symbol": symbol, "run": run} | _track_record(frame[run], per_year, settings)
            )
        sets.append(_confidence_set(frame, symbol, settings, seed))
        if symbol in comparison.bars:  # market regimes are a symbol's, not the aggregate's
            regimes.append(
                _regimes(comparison, symbol, frame, pairs, tests, per_year, settings, seed)
            )
    return Verdicts(
        tests=pd.DataFrame(tests).set_index(["symbol", "later", "earlier"]),
        effects=pd.concat(effects)
        .reset_index()
        .set_index(["symbol", "later", "earlier", "metric"]),
        track_record=pd.DataFrame(records).set_index(["symbol", "run"]),
        power=pd.DataFrame(power).set_index(["symbol", "later", "earlier", "annual_drop"]),
        confidence_set=pd.concat(sets),
        regimes=pd.concat(regimes) if regimes else pd.DataFrame(),
        returns=returns,
        settings=settings,
    )


def _regimes(comparison, symbol, frame, pairs, tests, per_year, settings, seed) -> pd.DataFrame:
    """Each non-identical transition's value per regime of ``symbol``."""
    same = {
        (row["later"], row["earlier"])
        for row in tests
        if row["symbol"] == symbol and row["verdict"] == IDENTICAL
    }
    chosen = [(later, earlier) for later, earlier, _ in pairs if (later, earlier) not in same]
    if not chosen:
        return pd.DataFrame()
    labels = regime_labels(comparison.bars[symbol]["close"], period=settings.period)
    table = value_by_regime(
        frame,
        labels,
        chosen,
        per_year,
        draws=settings.draws,
        block_length=settings.block_length,
        confidence=settings.confidence,
        seed=seed,
    )
    return pd.concat({symbol: table}, names=["symbol"])


def _bars_per_period(comparison: Comparison, symbol: str, period: str) -> float:
    if symbol in comparison.bars and len(comparison.bars[symbol]) > 2:
        bar = infer_interval(comparison.bars[symbol].index)
    else:
        bar = min(infer_interval(frame.index) for frame in comparison.bars.values())
    return check_period(period) / bar


def _test_row(later, earlier, interval, label, symbol, per_year, settings) -> dict:
    a, b = later.to_numpy(), earlier.to_numpy()
    if np.array_equal(a, b):
        p_value = p_greater = p_boot = p_iid = np.nan
        variance = 0.0
        word = IDENTICAL
    else:
        hac = sharpe_difference_test(a, b)
        boot = bootstrap_sharpe_difference_test(
            a, b, draws=settings.draws, block_length=settings.block_length, seed=settings.seed
        )
        iid = iid_sharpe_difference_test(a, b)
        p_value, p_greater = hac.p_value, hac.p_value_greater
        p_boot, p_iid = boot.p_value, iid.p_value
        variance = hac.variance
        word = verdict_word(interval["low"], interval["high"], p_value, settings.confidence)
    estimate, low, high = interval["estimate"], interval["low"], interval["high"]
    if word == IDENTICAL:
        sentence = (
            f"{label}, {symbol}: identical returns on every period: the layer changes nothing"
        )
    else:
        meaning = {
            ADDS: "the layer adds value",
            LOSES: "the layer loses value",
            UNDECIDED: "no difference beyond chance",
        }[word]
        if label.startswith("Meta and Arbiter"):
            meaning = {
                ADDS: "the layers add value",
                LOSES: "the layers lose value",
                UNDECIDED: "no difference beyond chance",
            }[word]
        elif not label.startswith(("Meta", "Arbiter")):
            meaning = {
                ADDS: "the hierarchy beats it",
                LOSES: "the hierarchy trails it",
                UNDECIDED: "no difference beyond chance",
            }[word]
        sentence = (
            f"{label}, {symbol}: Sharpe {estimate:+.2f} [{low:+.2f}, {high:+.2f}] "
            f"({settings.confidence * 100:g} %), {format_p_value(p_value)}: {meaning}"
        )
    return {
        "transition": label,
        "sharpe_difference": estimate,
        "low": low,
        "high": high,
        "p_value": p_value,
        "p_value_greater": p_greater,
        "bootstrap_p_value": p_boot,
        "iid_p_value": p_iid,
        "periods": len(a),
        "verdict": word,
        "sentence": sentence,
        "variance": variance,
    }


def _track_record(returns: pd.Series, per_year: float, settings: VerdictSettings) -> dict:
    values = returns.to_numpy()
    sharpe = sharpe_ratio(values.mean(), values.std(ddof=1), len(values))
    if np.isfinite(sharpe):
        skewness = float(stats.skew(values))
        kurtosis = float(stats.kurtosis(values, fisher=False))
        needed = min_track_record_length(sharpe, skewness, kurtosis, 0.0, 1.0 - settings.alpha)
    else:
        skewness = kurtosis = needed = np.nan
    return {
        "sharpe": sharpe * math.sqrt(per_year),
        "periods": len(values),
        "skewness": skewness,
        "kurtosis": kurtosis,
        "min_track_record": needed,
        "min_track_record_years": needed / per_year,
        "enough": bool(len(values) >= needed) if np.isfinite(needed) else False,
    }


def _confidence_set(frame: pd.DataFrame, symbol: str, settings, seed: int) -> pd.DataFrame:
    stages = [run for run in HIERARCHY_RUNS if run in frame.columns]
    losses = -frame[stages]
    # runs with the same returns are one model: test the first, report it for all
    distinct = losses.T.drop_duplicates().T
    if distinct.shape[1] < 2:
        result = pd.DataFrame(
            {"pvalue": 1.0, "included": True}, index=pd.Index(stages, name="model")
        )
    else:
        result = model_confidence_set(
            distinct,
            size=1.0 - settings.confidence,
            block_length=settings.block_length,
            draws=settings.draws,
            seed=seed,
        )
        for run in stages:
            if run not in result.index:
                twin = next(c for c in distinct.columns if losses[c].equals(losses[run]))
                result.loc[run] = result.loc[twin]
    result = result.loc[stages].reset_index().rename(columns={"model": "run"})
    return result.assign(symbol=symbol).set_index(["symbol", "run"])
