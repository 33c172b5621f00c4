"""Paired outcomes of Arbiter overrides, computed bar by bar as live data arrives.

An override's outcome is the stage's equity minus the equity of the run where that one bar
followed the ensemble instead, after costs, read once the two runs' positions agree again
(P-OUT-1 to P-OUT-6). :class:`OverrideOutcomes` keeps the actual portfolio and one forked
counterfactual portfolio per unresolved override, so each bar costs O(1) work per open
override, and it emits an outcome only on the bar where it is known from the data so far. On
history its outcomes equal :func:`qt_backtest.backtest.attribution.override_values` (T-ATTR-2).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.backtest.attribution import MIN_TRADE_CONFIDENCE
from qt_backtest.backtest.rules import PositionRules
from qt_backtest.codes import (
    ACTION_CODES,
    ACTION_LABELS,
    ACTION_NAMES,
    HOLD,
    SELL,
    SWEEP_RULES,
    action_code,
    encode_actions,
)
from qt_backtest.data.validate import validate_ohlcv
from qt_backtest.errors import ConfigError, DataValidationError
from qt_backtest.monitor import nb

#: Position rules whose effect an incremental run cannot reproduce, and why (P-OUT-6).
UNSUPPORTED_RULES = {
    "size_granularity": "its portfolios trade fractional units",
    "close_at_end": "a live stream has no known last bar to close the position on",
}
#: Version of the layout :meth:`OverrideOutcomes.to_dict` writes.
STATE_VERSION = 1
#: Columns of an outcome, in order (P-OUT-5).
OUTCOME_COLUMNS = (
    "timestamp",
    "bar",
    "arbiter_action",
    "base_action",
    "agree_bar",
    "settled_bar",
    "settled_timestamp",
    "known_bar",
    "value",
    "relative_value",
)
_SOURCE = "override outcomes"


def check_outcome_rules(rules: PositionRules) -> None:
    """Raise a :class:`~qt_backtest.errors.ConfigError` naming the first field of ``rules``
    that incremental override outcomes cannot honour (see :data:`UNSUPPORTED_RULES`)."""
    if not isinstance(rules, PositionRules):
        raise ConfigError(f"rules must be PositionRules, got {type(rules).__name__}", name="rules")
    default = PositionRules()
    for name, why in UNSUPPORTED_RULES.items():
        if getattr(rules, name) != getattr(default, name):
            raise ConfigError(
                f"override outcomes do not support {name} ({why}); got "
                f"{name}={getattr(rules, name)!r}: leave it at its default "
                f"({getattr(default, name)!r}), or value overrides on history with "
                "qt_backtest.backtest.attribution.override_values",
                name=name,
                value=getattr(rules, name),
            )


def rule_row(rules: PositionRules) -> np.ndarray:
    """``rules`` as the kernels' row of floats (``codes.SWEEP_RULES`` layout)."""
    values = {
        "long_only": float(rules.long_only),
        "hold_flat": 1.0 if rules.hold == "flat" else 0.0,
        "max_hold": float(rules.max_hold_bars or 0),
        "size": float(rules.size),
        "scale": float(rules.scale_by_confidence),
        "lag": float(rules.execution_lag),
        "fee": float(rules.fee),
        "slippage": rules.slippage_bps / 10_000.0,
        "fill_at_open": 1.0 if rules.fill_price == "open" else 0.0,
        "maintenance": float(rules.maintenance_margin),
    }
    return np.array([values[name] for name in SWEEP_RULES])


def _check_minimum(minimum: float | None) -> float | None:
    if minimum is None:
        return None
    if isinstance(minimum, bool) or not isinstance(minimum, int | float | np.floating):
        raise ConfigError(
            f"min_trade_confidence must be a number in [0, 1] or None, got {minimum!r}",
            name="min_trade_confidence",
            value=minimum,
        )
    if not 0.0 <= float(minimum) <= 1.0:
        raise ConfigError(
            f"min_trade_confidence must be in [0, 1] or None, got {minimum!r}",
            name="min_trade_confidence",
            value=minimum,
        )
    return float(minimum)


def _governed(action: int, confidence: float, minimum: float | None) -> int:
    """The ensemble's action after the live risk governor (H-MODE-3), as the attribution's
    counterfactual applies it (P-OUT-1)."""
    if minimum is not None and action != HOLD and confidence < minimum:
        return HOLD
    return action


def _timestamp(ns: int, tz: str | None) -> pd.Timestamp:
    """The time ``ns`` since the epoch (UTC when ``tz`` is given), in zone ``tz``."""
    return pd.Timestamp(ns) if tz is None else pd.Timestamp(ns, tz=tz)


def _relative(actual: float, other: float) -> float:
    """``actual / other - 1`` in IEEE arithmetic, as numpy divides (inf or NaN at 0)."""
    if other == 0.0:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.float64(actual) / np.float64(other) - 1.0)
    return actual / other - 1.0


def _relative_values(actual: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``actual / other - 1`` (P-OUT-5), as the attribution divides."""
    if other.all():  # the usual case; errstate costs more than a small division
        return actual / other - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return actual / other - 1.0


def _times(ns: np.ndarray, tz: str | None) -> pd.DatetimeIndex:
    """Times from ns since the epoch (UTC when ``tz`` is given), in zone ``tz``."""
    times = pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]"))
    return times if tz is None else times.tz_localize("UTC").tz_convert(tz)


def _zone(timestamp: Any) -> str | None:
    """The time zone of ``timestamp`` by name, None when naive."""
    tz = pd.Timestamp(timestamp).tz
    return None if tz is None else str(tz)


def _floats(values: np.ndarray) -> list[float | None]:
    """JSON-safe floats: NaN as None (floats round-trip exactly through JSON's decimal text)."""
    return [None if math.isnan(x) else float(x) for x in values.tolist()]


def _rows(rows: Any, width: int, name: str, dtype: type = np.float64) -> np.ndarray:
    """A state field of rows of ``width`` numbers (None: NaN) as an array of ``dtype``, shape
    (rows, width); raises ConfigError naming the field otherwise."""
    try:
        array: np.ndarray = np.array(
            [[np.nan if x is None else x for x in row] for row in rows], dtype=dtype
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(f"state field {name!r} is not rows of numbers", name=name) from error
    array = array.reshape(-1, width) if array.size == 0 else array
    if array.ndim != 2 or array.shape[1] != width:
        raise ConfigError(
            f"state field {name!r} must hold rows of {width} numbers (the rules' layout)",
            name=name,
        )
    return array


class OverrideOutcomes:
    """Incremental paired outcomes of overrides: O(1) work per bar per open override (state =
    the actual path's portfolio state plus one forked counterfactual portfolio per unresolved
    override).

    Parameters
    ----------
    rules : PositionRules, optional
        Position model and costs of the live run (the defaults otherwise);
        ``size_granularity`` and ``close_at_end`` are refused (P-OUT-6).
    min_trade_confidence : float or None
        The live risk governor, applied to the ensemble's decision of the counterfactual as
        the replay applies it (default: the hierarchy's default threshold; None: no governor).

    Notes
    -----
    Feed every bar in order with :meth:`step`. The decision of a bar is known at its close and
    fills per P-FILL-1 and P-FILL-2. An outcome is returned on the bar where it becomes known
    (P-OUT-4); overrides not yet settled are listed by :attr:`open_overrides`, and those still
    open when the data ends are never emitted.
    """

    def __init__(
        self,
        rules: PositionRules | None = None,
        min_trade_confidence: float | None = MIN_TRADE_CONFIDENCE,
    ) -> None:
        rules = PositionRules() if rules is None else rules
        check_outcome_rules(rules)
        self.rules = rules
        self.min_trade_confidence = _check_minimum(min_trade_confidence)
        self._rule_row = rule_row(rules)
        self._actual = nb.new_path(rules.execution_lag, rules.init_cash)
        self._width = self._actual.shape[0] + len(nb.TRACK_FIELDS)
        self._forks_f = np.zeros((0, self._width))
        self._forks_i = np.zeros((0, len(nb.KEY_FIELDS)), dtype=np.int64)
        self._out_f = np.zeros((0, len(nb.OUT_FIELDS)))
        self._out_i = np.zeros((0, len(nb.OUT_KEYS)), dtype=np.int64)
        self._count = 0
        self._bars = 0
        self._last_time: int | None = None
        self._tz: str | None = None
        self._reserve(16)
        self._bar_f = np.empty((1, len(nb.BAR_FIELDS)))
        self._bar_i = np.empty((1, len(nb.BAR_KEYS)), dtype=np.int64)

    # --- feeding bars ---------------------------------------------------------------------------

    def step(
        self,
        timestamp: Any,
        open_: float,
        high: float,
        low: float,
        close: float,
        *,
        action: str | int,
        confidence: float,
        ensemble_action: str | int,
        ensemble_confidence: float,
        override: bool,
        arbiter_action: str | int | None = None,
    ) -> list[dict[str, Any]]:
        """Feed one bar and the decision taken at its close; returns the outcomes settled at
        this bar (P-OUT-4), oldest override first.

        Parameters
        ----------
        timestamp : timestamp-like
            The bar's time; strictly after the previous bar's, with the same time zone (or
            none).
        open_, high, low, close : float
            The bar's prices (finite, positive, ``low <= open, close <= high``).
        action, confidence
            The stage's final decision at this bar (after the risk governor: what the live run
            trades), BUY / SELL / HOLD or -1 / 0 / 1, confidence in [0, 1].
        ensemble_action, ensemble_confidence
            What the ensemble alone decided at this bar, before the risk governor.
        override : bool
            Whether the Arbiter overrode the ensemble at this bar (gate ``override``).
        arbiter_action : str or int, optional
            The Arbiter's own action, recorded with the outcome (``action`` by default).

        Returns
        -------
        list of dict
            One per outcome settled at this bar, with the keys of :data:`OUTCOME_COLUMNS`:
            the override's ``timestamp`` and ``bar`` (0-based count of bars fed), its
            ``arbiter_action`` and ``base_action``, the bar where the two targets agree again
            (``agree_bar``), the bar whose close values it (``settled_bar``,
            ``settled_timestamp``), the bar where it became known (``known_bar``, this one),
            ``value`` (quote currency) and ``relative_value`` (P-OUT-5).
        """
        bar = self._bars
        time = self._check_time(timestamp)
        open_, high, low, close = _check_prices(open_, high, low, close, bar, timestamp)
        code = _check_action(action, "action", bar, timestamp)
        conf = _check_confidence(confidence, "confidence", bar, timestamp)
        ensemble = _check_action(ensemble_action, "ensemble_action", bar, timestamp)
        ensemble_conf = _check_confidence(
            ensemble_confidence, "ensemble_confidence", bar, timestamp
        )
        if override.__class__ is not bool and not isinstance(override, np.bool_):
            raise DataValidationError(
                f"override must be True or False, got {override!r}",
                source=_SOURCE,
                row=bar,
                timestamp=timestamp,
            )
        arbiter = (
            code
            if arbiter_action is None
            else _check_action(arbiter_action, "arbiter_action", bar, timestamp)
        )
        if bar == 0:
            self._tz = _zone(timestamp)
        # one assignment per row, in the order of nb.BAR_FIELDS and nb.BAR_KEYS
        self._bar_f[0] = (
            open_,
            high,
            low,
            close,
            code,
            conf,
            _governed(ensemble, ensemble_conf, self.min_trade_confidence),
            ensemble_conf,
        )
        self._bar_i[0] = (time, 1 if override else 0, arbiter, ensemble)
        settled = self._advance(self._bar_f, self._bar_i, 1 if override else 0)
        if not settled:
            return []
        return self._settled_rows(settled)

    def step_many(
        self,
        times: np.ndarray,
        prices: np.ndarray,
        action: np.ndarray,
        confidence: np.ndarray,
        ensemble_action: np.ndarray,
        ensemble_confidence: np.ndarray,
        override: np.ndarray,
        arbiter_action: np.ndarray,
        tz: str | None = "UTC",
        columns: tuple[str, ...] = OUTCOME_COLUMNS,
    ) -> dict[str, Any]:
        """Feed ``n`` bars at once, as ``n`` calls of :meth:`step` would; returns the outcomes
        settled over them as columns (those of :data:`OUTCOME_COLUMNS`), in the order they
        became known.

        Parameters
        ----------
        times : int64 array, shape (n,)
            The bars' times in ns since the epoch (UTC when ``tz`` is given), increasing and
            after the previous bar's.
        prices : float array, shape (n, 4)
            Open, high, low and close of each bar.
        action, ensemble_action, arbiter_action : int arrays, shape (n,)
            Action codes (-1 SELL, 0 HOLD, 1 BUY) of the stage (after the risk governor), of the
            ensemble (before it) and of the Arbiter (read on override bars only).
        confidence, ensemble_confidence : float arrays, shape (n,)
            In [0, 1].
        override : bool array, shape (n,)
        tz : str or None
            Zone the times are reported in (as :meth:`step` takes it from its timestamps).
        columns : tuple of str
            The outcome columns wanted (``known_bar`` and ``relative_value`` alone are the
            cheapest: no times or labels are made).
        """
        times = np.asarray(times, dtype=np.int64)
        count = len(times)
        arrays = {
            "prices": np.asarray(prices, dtype=np.float64).reshape(count, 4),
            "action": np.asarray(action, dtype=np.int64),
            "confidence": np.asarray(confidence, dtype=np.float64),
            "ensemble_action": np.asarray(ensemble_action, dtype=np.int64),
            "ensemble_confidence": np.asarray(ensemble_confidence, dtype=np.float64),
            "override": np.asarray(override, dtype=bool),
            "arbiter_action": np.asarray(arbiter_action, dtype=np.int64),
        }
        _check_bar_arrays(times, arrays, self._last_time, self._bars)
        if count == 0:
            return self._settled_columns(0, columns)
        if self._bars and tz != self._tz:
            raise DataValidationError(
                f"times in zone {tz} after bars in zone {self._tz}", source=_SOURCE, row=self._bars
            )
        self._tz = tz
        bar_f, bar_i = bar_inputs(
            times,
            arrays["prices"],
            arrays["action"],
            arrays["confidence"],
            arrays["ensemble_action"],
            arrays["ensemble_confidence"],
            arrays["override"],
            np.where(arrays["override"], arrays["arbiter_action"], 0),
            self.min_trade_confidence,
        )
        settled = self._advance(bar_f, bar_i, int(np.count_nonzero(arrays["override"])))
        return self._settled_columns(settled, columns)

    def _check_time(self, timestamp: Any) -> int:
        """The bar's ``timestamp`` in ns since the epoch (UTC for a zone-aware time)."""
        try:
            stamp = pd.Timestamp(timestamp)
        except (TypeError, ValueError) as error:
            raise DataValidationError(
                f"timestamp {timestamp!r} is not a time", source=_SOURCE, row=self._bars
            ) from error
        if stamp is pd.NaT:
            raise DataValidationError("timestamp is missing (NaT)", source=_SOURCE, row=self._bars)
        if self._bars and (stamp.tz is None) != (self._tz is None):
            raise DataValidationError(
                f"timestamp {stamp} mixes time-zone-aware and naive times "
                f"(earlier bars: {self._tz or 'naive'})",
                source=_SOURCE,
                row=self._bars,
            )
        time = int(stamp.value)
        if self._last_time is not None and time <= self._last_time:
            raise DataValidationError(
                f"timestamp {stamp} is not after the previous bar's "
                f"({_timestamp(self._last_time, self._tz)}): bars must come in order, once each",
                source=_SOURCE,
                row=self._bars,
            )
        return time

    def _reserve(self, rows: int) -> None:
        """Grow the counterfactual and output buffers to hold at least ``rows`` rows."""
        if self._forks_f.shape[0] >= rows:
            return
        capacity = max(rows, 2 * self._forks_f.shape[0])
        forks_f = np.zeros((capacity, self._width))
        forks_i = np.zeros((capacity, len(nb.KEY_FIELDS)), dtype=np.int64)
        forks_f[: self._count] = self._forks_f[: self._count]
        forks_i[: self._count] = self._forks_i[: self._count]
        self._forks_f, self._forks_i = forks_f, forks_i
        self._out_f = np.zeros((capacity, len(nb.OUT_FIELDS)))
        self._out_i = np.zeros((capacity, len(nb.OUT_KEYS)), dtype=np.int64)

    def _advance(self, bar_f: np.ndarray, bar_i: np.ndarray, overrides: int) -> int:
        """Run validated bars holding ``overrides`` overrides through the kernel; returns the
        number of outcomes settled (in the output buffers)."""
        self._reserve(self._count + overrides)
        self._count, settled = nb.advance_nb(
            bar_f,
            bar_i,
            self._rule_row,
            self._bars,
            self._actual,
            self._forks_f,
            self._forks_i,
            self._count,
            self._out_f,
            self._out_i,
        )
        self._bars += bar_f.shape[0]
        self._last_time = int(bar_i[-1, nb.BK_TIME])
        return int(settled)

    def _settled_rows(self, settled: int) -> list[dict[str, Any]]:
        """The few outcomes of one bar as dicts, equal to the rows of
        :meth:`_settled_columns` (scalar conversions: no array overhead per bar)."""
        rows = []
        for keys, values in zip(
            self._out_i[:settled].tolist(), self._out_f[:settled].tolist(), strict=True
        ):
            actual, other = values[nb.O_ACTUAL], values[nb.O_COUNTERFACTUAL]
            rows.append(
                {
                    "timestamp": _timestamp(keys[nb.OK_TIME], self._tz),
                    "bar": keys[nb.OK_BAR],
                    "arbiter_action": ACTION_NAMES[keys[nb.OK_ARBITER]],
                    "base_action": ACTION_NAMES[keys[nb.OK_BASE]],
                    "agree_bar": keys[nb.OK_AGREE],
                    "settled_bar": keys[nb.OK_SETTLED],
                    "settled_timestamp": _timestamp(keys[nb.OK_SETTLED_TIME], self._tz),
                    "known_bar": keys[nb.OK_KNOWN],
                    "value": actual - other,
                    "relative_value": _relative(actual, other),
                }
            )
        return sorted(rows, key=lambda row: row["bar"])

    def _settled_columns(
        self, settled: int, columns: tuple[str, ...] = OUTCOME_COLUMNS
    ) -> dict[str, Any]:
        """The outcomes in the output buffers as columns (arrays and DatetimeIndexes), ordered
        by the bar they became known at, then by override bar; only ``columns`` are made."""
        keys = self._out_i[:settled]
        order = np.lexsort((keys[:, nb.OK_BAR], keys[:, nb.OK_KNOWN]))
        keys = keys[order]
        values = self._out_f[:settled][order]
        actual = values[:, nb.O_ACTUAL]
        other = values[:, nb.O_COUNTERFACTUAL]
        labels = np.array(ACTION_LABELS, dtype=object)
        makers = {
            "timestamp": lambda: _times(keys[:, nb.OK_TIME], self._tz),
            "bar": lambda: keys[:, nb.OK_BAR],
            "arbiter_action": lambda: labels[keys[:, nb.OK_ARBITER] - SELL],
            "base_action": lambda: labels[keys[:, nb.OK_BASE] - SELL],
            "agree_bar": lambda: keys[:, nb.OK_AGREE],
            "settled_bar": lambda: keys[:, nb.OK_SETTLED],
            "settled_timestamp": lambda: _times(keys[:, nb.OK_SETTLED_TIME], self._tz),
            "known_bar": lambda: keys[:, nb.OK_KNOWN],
            "value": lambda: actual - other,
            "relative_value": lambda: _relative_values(actual, other),
        }
        return {name: makers[name]() for name in columns}

    # --- what is open ---------------------------------------------------------------------------

    @property
    def bars(self) -> int:
        """Bars fed so far."""
        return self._bars

    @property
    def open_overrides(self) -> list[dict[str, Any]]:
        """Overrides not settled yet, oldest first: ``timestamp``, ``bar``, ``arbiter_action``
        and ``base_action``. Those still open when the data ends have no outcome (P-OUT-4)."""
        keys = self._forks_i[: self._count]
        keys = keys[np.argsort(keys[:, nb.K_BAR], kind="stable")]
        return [
            {
                "timestamp": _timestamp(int(row[nb.K_TIME]), self._tz),
                "bar": int(row[nb.K_BAR]),
                "arbiter_action": ACTION_NAMES[int(row[nb.K_ARBITER])],
                "base_action": ACTION_NAMES[int(row[nb.K_BASE])],
            }
            for row in keys
        ]

    # --- state ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole state as JSON-safe plain values (NaN written as None); restoring it with
        :meth:`from_dict` between two bars changes no later outcome."""
        return {
            "version": STATE_VERSION,
            "rules": dataclasses.asdict(self.rules),
            "min_trade_confidence": self.min_trade_confidence,
            "bars": self._bars,
            "last_time": self._last_time,
            "tz": self._tz,
            "actual": _floats(self._actual),
            "forks": [_floats(row) for row in self._forks_f[: self._count]],
            "fork_keys": self._forks_i[: self._count].tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> OverrideOutcomes:
        """The monitor whose :meth:`to_dict` gave ``state``; raises ConfigError on a state of
        another version or shape."""
        missing = {"version", "rules", "min_trade_confidence", "bars", "last_time", "tz"}
        missing |= {"actual", "forks", "fork_keys"}
        missing -= set(state)
        if missing:
            raise ConfigError(f"override outcomes state misses {sorted(missing)}", name="state")
        if state["version"] != STATE_VERSION:
            raise ConfigError(
                f"override outcomes state version {state['version']!r}; this version reads "
                f"{STATE_VERSION}",
                name="version",
                value=state["version"],
            )
        try:
            rules = PositionRules(**state["rules"])
        except TypeError as error:
            raise ConfigError(f"state field 'rules': {error}", name="rules") from error
        monitor = cls(rules, state["min_trade_confidence"])
        actual = _rows([state["actual"]], monitor._actual.size, "actual")[0]
        forks = _rows(state["forks"], monitor._width, "forks")
        keys = _rows(state["fork_keys"], len(nb.KEY_FIELDS), "fork_keys", np.int64)
        if forks.shape[0] != keys.shape[0]:
            raise ConfigError("state fields 'forks' and 'fork_keys' differ in length", name="forks")
        monitor._actual[:] = actual
        monitor._reserve(max(16, forks.shape[0]))
        monitor._forks_f[: forks.shape[0]] = forks
        monitor._forks_i[: keys.shape[0]] = keys
        monitor._count = forks.shape[0]
        monitor._bars = int(state["bars"])
        monitor._last_time = None if state["last_time"] is None else int(state["last_time"])
        monitor._tz = state["tz"]
        return monitor


# --- validation of one bar ------------------------------------------------------------------------


def _check_prices(
    open_: Any, high: Any, low: Any, close: Any, bar: int, timestamp: Any
) -> tuple[float, float, float, float]:
    """The bar's prices as floats; raises unless finite, positive and bracketed by low and
    high (the checks of :func:`~qt_backtest.data.validate.validate_ohlcv`)."""
    values = (_number(open_), _number(high), _number(low), _number(close))
    o, h, lo, c = values
    # one chain covers it all: NaN fails every comparison, and low > 0, high < inf bound the rest
    if 0.0 < lo <= o <= h < math.inf and lo <= c <= h:
        return values
    for name, price, value in zip(
        ("open", "high", "low", "close"), (open_, high, low, close), values, strict=True
    ):
        if not (math.isfinite(value) and value > 0.0):
            raise DataValidationError(
                f"{name} price must be a finite number > 0, got {price!r}",
                source=_SOURCE,
                row=bar,
                timestamp=timestamp,
            )
    raise DataValidationError(
        f"prices are inconsistent: low {lo} and high {h} must bracket open {o} and close {c}",
        source=_SOURCE,
        row=bar,
        timestamp=timestamp,
    )


def _number(value: Any) -> float:
    """``value`` as a float, NaN when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _check_action(action: Any, name: str, bar: int, timestamp: Any) -> int:
    if action.__class__ is str and action in ACTION_CODES:
        return ACTION_CODES[action]  # the common case, upper-case text
    try:
        return action_code(action)
    except (ValueError, TypeError) as error:
        raise DataValidationError(
            f"{name}: {error}", source=_SOURCE, row=bar, timestamp=timestamp
        ) from error


def _check_confidence(confidence: Any, name: str, bar: int, timestamp: Any) -> float:
    value = _number(confidence)
    if isinstance(confidence, bool) or not 0.0 <= value <= 1.0:  # NaN fails too
        raise DataValidationError(
            f"{name} must be a number in [0, 1], got {confidence!r}",
            source=_SOURCE,
            row=bar,
            timestamp=timestamp,
        )
    return value


def _is_code(codes: np.ndarray) -> np.ndarray:
    return (codes >= SELL) & (codes <= -SELL)


def _check_bar_arrays(
    times: np.ndarray, arrays: dict[str, np.ndarray], last_time: int | None, first_row: int
) -> None:
    """Raise a DataValidationError naming the first bad bar of :meth:`step_many`'s arrays."""
    count = len(times)
    for name, values in arrays.items():
        if len(values) != count:
            raise DataValidationError(
                f"{name} has {len(values)} rows for {count} times", source=_SOURCE
            )
    previous = np.r_[np.iinfo(np.int64).min if last_time is None else last_time, times[:-1]]
    o, h, lo, c = arrays["prices"].T
    checks = (
        (times > previous, "times must increase, each after the previous bar's"),
        (
            (lo > 0) & (lo <= o) & (o <= h) & (h < np.inf) & (lo <= c) & (c <= h),
            "prices must be finite and > 0, with low and high bracketing open and close",
        ),
        (_is_code(arrays["action"]), "action codes must be -1, 0 or 1"),
        (
            _is_code(arrays["ensemble_action"]),
            "ensemble action codes must be -1, 0 or 1",
        ),
        (
            _is_code(arrays["arbiter_action"]) | ~arrays["override"],
            "Arbiter action codes must be -1, 0 or 1 on override bars",
        ),
        (
            (arrays["confidence"] >= 0) & (arrays["confidence"] <= 1),
            "confidences must be in [0, 1]",
        ),
        (
            (arrays["ensemble_confidence"] >= 0) & (arrays["ensemble_confidence"] <= 1),
            "ensemble confidences must be in [0, 1]",
        ),
    )
    for good, message in checks:
        if not good.all():
            row = int(np.flatnonzero(~good)[0])
            raise DataValidationError(
                f"{message} (bar {first_row + row})", source=_SOURCE, row=first_row + row
            )


# --- a whole replay -------------------------------------------------------------------------------


def override_outcomes(
    bars: pd.DataFrame,
    decisions: pd.DataFrame,
    rules: PositionRules | None = None,
    *,
    min_trade_confidence: float | None = MIN_TRADE_CONFIDENCE,
) -> pd.DataFrame:
    """The outcomes :class:`OverrideOutcomes` emits over a whole ``meta_arbiter`` replay.

    Parameters
    ----------
    bars : DataFrame
        Validated OHLCV bars.
    decisions : DataFrame
        The replay (:func:`~qt_backtest.hierarchy.replay`) indexed like ``bars``:
        ``final_action``, ``final_confidence``, ``base_action``, ``base_confidence``, ``gate``
        and ``arbiter_action``.
    rules, min_trade_confidence
        As for :class:`OverrideOutcomes`.

    Returns
    -------
    DataFrame
        One row per settled override, columns :data:`OUTCOME_COLUMNS`, in the order the
        outcomes became known. ``attrs["open_overrides"]`` lists the bars of the overrides
        still open at the end (P-OUT-4).
    """
    monitor = OverrideOutcomes(rules, min_trade_confidence)
    validate_ohlcv(bars, source=bars.attrs.get("source"), check_interval=False)
    if not decisions.index.equals(bars.index):
        raise ValueError("decisions must be indexed like the bars (one decision per bar)")
    bar_f, bar_i = _replay_inputs(bars, decisions, monitor.min_trade_confidence)
    monitor._tz = None if bars.index.tz is None else str(bars.index.tz)
    overrides = int(np.count_nonzero(bar_i[:, nb.BK_OVERRIDE]))
    settled = monitor._advance(bar_f, bar_i, overrides) if len(bars) else 0
    frame = pd.DataFrame(monitor._settled_columns(settled), columns=list(OUTCOME_COLUMNS))
    frame.attrs["open_overrides"] = [row["bar"] for row in monitor.open_overrides]
    return frame


def _replay_codes(decisions: pd.DataFrame, column: str, where: np.ndarray) -> np.ndarray:
    """Action codes of ``column`` (0 outside ``where``); raises naming the first bad row."""
    codes, present, bad = encode_actions(decisions[column])
    wrong = where & (bad | ~present)
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        raise DataValidationError(
            f"{column} is not BUY, SELL or HOLD: {decisions[column].iloc[row]!r}",
            source=_SOURCE,
            row=row,
            timestamp=decisions.index[row],
        )
    return np.where(where, codes, 0).astype(np.int64)


def _replay_confidences(decisions: pd.DataFrame, column: str) -> np.ndarray:
    values = decisions[column].to_numpy(dtype=np.float64, na_value=np.nan)
    wrong = ~((values >= 0.0) & (values <= 1.0))
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        raise DataValidationError(
            f"{column} must be a number in [0, 1], got {values[row]!r}",
            source=_SOURCE,
            row=row,
            timestamp=decisions.index[row],
        )
    return values


def _replay_inputs(
    bars: pd.DataFrame, decisions: pd.DataFrame, minimum: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's per-bar inputs (``nb.BAR_FIELDS``, ``nb.BAR_KEYS``) of a replay."""
    every = np.ones(len(decisions), dtype=bool)
    override = (decisions["gate"] == "override").to_numpy(dtype=bool, na_value=False)
    action = _replay_codes(decisions, "final_action", every)
    confidence = _replay_confidences(decisions, "final_confidence")
    base = _replay_codes(decisions, "base_action", every)
    base_confidence = _replay_confidences(decisions, "base_confidence")
    arbiter = _replay_codes(decisions, "arbiter_action", override)
    times = pd.DatetimeIndex(bars.index).as_unit("ns").asi8
    prices = bars[["open", "high", "low", "close"]].to_numpy(dtype=np.float64)
    return bar_inputs(
        times, prices, action, confidence, base, base_confidence, override, arbiter, minimum
    )


def bar_inputs(
    times: np.ndarray,
    prices: np.ndarray,
    action: np.ndarray,
    confidence: np.ndarray,
    base: np.ndarray,
    base_confidence: np.ndarray,
    override: np.ndarray,
    arbiter: np.ndarray,
    minimum: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's per-bar inputs (``nb.BAR_FIELDS``, ``nb.BAR_KEYS``) from validated arrays
    of ``n`` bars: times (ns), prices (n, 4: open, high, low, close), action codes and
    confidences of the stage and of the ensemble (before the governor), override flags and the
    Arbiter's action codes."""
    governed = base.copy()
    if minimum is not None:
        governed[(base != HOLD) & (base_confidence < minimum)] = HOLD  # H-MODE-3
    bar_f = np.empty((len(times), len(nb.BAR_FIELDS)))
    bar_f[:, nb.B_OPEN] = prices[:, 0]
    bar_f[:, nb.B_HIGH] = prices[:, 1]
    bar_f[:, nb.B_LOW] = prices[:, 2]
    bar_f[:, nb.B_CLOSE] = prices[:, 3]
    bar_f[:, nb.B_ACTION] = action
    bar_f[:, nb.B_CONFIDENCE] = confidence
    bar_f[:, nb.B_ENSEMBLE_ACTION] = governed
    bar_f[:, nb.B_ENSEMBLE_CONFIDENCE] = base_confidence
    bar_i = np.empty((len(times), len(nb.BAR_KEYS)), dtype=np.int64)
    bar_i[:, nb.BK_TIME] = times
    bar_i[:, nb.BK_OVERRIDE] = override
    bar_i[:, nb.BK_ARBITER] = arbiter
    bar_i[:, nb.BK_BASE] = base
    return bar_f, bar_i
