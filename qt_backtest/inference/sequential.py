"""Anytime-valid confidence sequences for a rollout monitor (T-SEQ-1 to T-SEQ-8).

A confidence sequence is a sequence of intervals, one after every decision, that holds the true
value at all times at once with the stated probability (T-SEQ-1): a monitor may look after
every decision and stop whenever it likes, which a fixed-sample interval does not allow.

* :class:`ProportionSequence` -- a rate (overrides, escalations, wins) from Bernoulli outcomes:
  the beta-binomial mixture of Howard, Ramdas, McAuliffe and Sekhon (2021), state
  ``(count, successes)`` (T-SEQ-2, T-SEQ-3);
* :class:`MeanSequence` -- the mean of outcomes clipped to ``[-bound, bound]`` (per-decision
  PnL differences, say): the predictable plug-in empirical-Bernstein sequence of Waudby-Smith
  and Ramdas (2024), state a few running sums, with the decision rule promote / roll back /
  continue (T-SEQ-4 to T-SEQ-6);
* :func:`decisions_to_verdict` -- how many outcomes the mean sequence needs before it decides,
  projected from a stated edge and spread (T-SEQ-7).

Both classes are small mutable dataclasses that serialise to JSON through ``to_dict`` and
``from_dict``. Their arithmetic is in :mod:`qt_backtest.inference.sequential_nb`, shared with
the simulation kernels that check it (T-SEQ-8).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from scipy import stats

from qt_backtest.errors import ConfigError, DataValidationError
from qt_backtest.inference.resample import check_probability
from qt_backtest.inference.sequential_nb import (
    CONTINUE,
    MEAN_STATE,
    PROMOTE,
    ROLL_BACK,
    UNIT_HIGH,
    UNIT_LOW,
    eb_log_term_nb,
    garch_scale_nb,
    initial_mean_state_nb,
    mean_sequence_update_nb,
    mixture_threshold_nb,
    outcome_units_nb,
    projected_decisions_nb,
    proportion_bounds_nb,
    proportion_decisions_to_exclude_nb,
    repeated_t_test_first_rejection_nb,
    verdict_nb,
)
from qt_backtest.parameters import close_matches, document_parameters, ordered, param, validate

#: The mean sequence's verdicts by code (T-SEQ-6).
VERDICTS = {PROMOTE: "promote", CONTINUE: "continue", ROLL_BACK: "roll back"}

SequenceKind = TypeVar("SequenceKind", "ProportionSequence", "MeanSequence")


def _confidence() -> Any:
    return param(
        0.95,
        doc="probability that the interval holds the true value at every decision at once",
        low=0.0,
        high=1.0,
        inclusive="neither",
        unit="probability",
        rule="T-SEQ-1",
    )


def _count(doc: str, rule: str) -> Any:
    return param(0, doc=doc, kind="int", low=0, unit="decisions", rule=rule)


def _sum(doc: str, high: float | None = None, default: float = 0.0) -> Any:
    return param(default, doc=doc, low=0.0, high=high, rule="T-SEQ-5")


def _from_dict(kind: type[SequenceKind], data: Any) -> SequenceKind:
    """An instance of ``kind`` from the mapping ``to_dict`` wrote, validated like any other."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"a {kind.__name__} is read from a mapping of its fields, got {type(data).__name__}"
        )
    names = [field.name for field in dataclasses.fields(kind)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        hints = {name: close_matches(str(name), names) for name in unknown}
        said = ", ".join(
            f"{name!r}" + (f" (did you mean {hints[name][0]!r}?)" if hints[name] else "")
            for name in unknown
        )
        raise ConfigError(f"unknown {kind.__name__} fields {said}", name=", ".join(unknown))
    return kind(**data)


def _check_successes(successes: Any) -> np.ndarray:
    """A 1-D array of outcomes that are booleans (or the integers 0 and 1), as bool."""
    values = np.asarray(successes)
    if values.ndim != 1:
        raise DataValidationError(
            f"successes must be a 1-D array of booleans, got shape {values.shape}",
            source="successes",
        )
    if values.dtype.kind == "b":
        return values
    if values.dtype.kind in "iu":
        bad = np.flatnonzero((values != 0) & (values != 1))
        if bad.size == 0:
            return values.astype(bool)
        raise DataValidationError(
            f"successes must be booleans (or 0 and 1), got {values[bad[0]]!r}",
            source="successes",
            row=int(bad[0]),
            count=int(bad.size),
        )
    raise DataValidationError(
        f"successes must be booleans (or the integers 0 and 1), got dtype {values.dtype}",
        source="successes",
    )


def _check_outcomes(outcomes: Any) -> np.ndarray:
    """A 1-D array of finite real outcomes, as contiguous float64."""
    values = np.asarray(outcomes)
    if values.ndim != 1:
        raise DataValidationError(
            f"outcomes must be a 1-D array of numbers, got shape {values.shape}",
            source="outcomes",
        )
    if values.dtype.kind not in "iuf":
        raise DataValidationError(
            f"outcomes must be real numbers, got dtype {values.dtype}", source="outcomes"
        )
    values = np.ascontiguousarray(values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataValidationError(
            f"outcomes must be finite, got {values[bad[0]]!r}",
            source="outcomes",
            row=int(bad[0]),
            count=int(bad.size),
        )
    return values


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(f"{name} must be a finite number, got {value!r}", name=name, value=value)
    if not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be a finite number, got {value!r}", name=name, value=value)
    return float(value)


@document_parameters
@dataclass
class ProportionSequence:
    """Anytime-valid confidence sequence for a rate ``p`` from Bernoulli outcomes (T-SEQ-2).

    The two-sided beta-binomial mixture of Howard et al. (2021): ``p`` is outside the interval
    once the mixture of likelihood ratios ``M_t(p)`` reaches ``1 / (1 - confidence)``. The state
    is ``(count, successes)``: an update costs O(1), the interval a root search. Assumes each
    outcome is a success with the same probability ``p`` given the ones before it (T-SEQ-2).

    >>> rates = ProportionSequence()
    >>> rates.update_many(np.array([True] * 3 + [False] * 57))
    >>> low, high = rates.interval()
    >>> bool(low < rates.estimate() < high)
    True
    """

    confidence: float = _confidence()
    prior_successes: float = param(
        0.5,
        doc="first parameter of the mixture's beta prior (0.5 with 0.5: Jeffreys)",
        low=0.0,
        inclusive="high",
        rule="T-SEQ-2",
    )
    prior_failures: float = param(
        0.5,
        doc="second parameter of the mixture's beta prior",
        low=0.0,
        inclusive="high",
        rule="T-SEQ-2",
    )
    count: int = _count("decisions seen", "T-SEQ-2")
    successes: int = _count("successes among them", "T-SEQ-2")

    def __post_init__(self) -> None:
        validate(self)
        ordered(self, "successes", "count")

    @property
    def _threshold(self) -> float:
        return float(mixture_threshold_nb(1.0 - self.confidence))

    def update(self, success: bool) -> None:
        """Take one outcome (True or False, or 1 or 0)."""
        boolean = isinstance(success, bool | np.bool_)
        if not (boolean or (isinstance(success, int | np.integer) and success in (0, 1))):
            raise DataValidationError(
                f"success must be True or False (or 1 or 0), got {success!r}", source="successes"
            )
        self.count += 1
        self.successes += int(bool(success))

    def update_many(self, successes: np.ndarray) -> None:
        """Take outcomes in order (a 1-D array of booleans): the same as one
        :meth:`update` each. Nothing is taken if any is not a boolean."""
        values = _check_successes(successes)
        self.count += int(values.size)
        self.successes += int(np.count_nonzero(values))

    def interval(self) -> tuple[float, float]:
        """``(low, high)``: the rates ``p`` with ``M_t(p) < 1 / (1 - confidence)``, found by
        root search; ``(0, 1)`` before the first decision (T-SEQ-2)."""
        low, high = proportion_bounds_nb(
            float(self.count),
            float(self.successes),
            self.prior_successes,
            self.prior_failures,
            self._threshold,
        )
        return float(low), float(high)

    def estimate(self) -> float:
        """``successes / count``; NaN before the first decision."""
        return self.successes / self.count if self.count else math.nan

    def decisions_to_exclude(self, value: float) -> float:
        """Further decisions until the interval would exclude ``value`` if outcomes kept
        arriving at the current rate (T-SEQ-3): 0 if it already does, ``inf`` if it never
        would (the rate equals ``value``) or before the first decision."""
        value = _real(value, "value")
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"value must be a rate in [0, 1], got {value!r}", name="value")
        return float(
            proportion_decisions_to_exclude_nb(
                float(self.count),
                float(self.successes),
                value,
                self.prior_successes,
                self.prior_failures,
                self._threshold,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain numbers (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProportionSequence:
        """The sequence :meth:`to_dict` wrote, validated."""
        return _from_dict(cls, data)


@document_parameters
@dataclass
class MeanSequence:
    """Anytime-valid confidence sequence for the mean of outcomes clipped to
    ``[-bound, bound]`` (T-SEQ-4, T-SEQ-5), and the rollout decision it supports (T-SEQ-6).

    The predictable plug-in empirical-Bernstein sequence of Waudby-Smith and Ramdas (2024),
    two-sided (``1 - confidence`` split in halves), on the outcomes mapped to ``[0, 1]``. The
    state is a few running sums: an update costs O(1). The reported interval is the running
    intersection of the intervals so far, so it never widens. Assumes every outcome has the
    same mean given the ones before it; volatility may cluster and tails may be fat (T-SEQ-4).

    >>> pnl = MeanSequence(bound=5.0)
    >>> pnl.update_many(np.full(400, 1.0))
    >>> pnl.decide(tolerance=0.0)
    'promote'
    """

    bound: float = param(
        doc="outcomes are clipped to [-bound, bound] before they are used",
        low=0.0,
        inclusive="high",
        unit="outcome units",
        rule="T-SEQ-4",
    )
    confidence: float = _confidence()
    count: int = _count("decisions seen", "T-SEQ-5")
    clipped: int = _count("outcomes that were clipped to the bound", "T-SEQ-4")
    unit_sum: float = _sum("sum of the outcomes mapped to [0, 1]")
    unit_squares: float = _sum("sum of their squared deviations from the running mean")
    bet_sum: float = _sum("sum of the bets")
    bet_weighted_sum: float = _sum("sum of the bets times the mapped outcomes")
    penalty_sum: float = _sum("sum of the variance penalties")
    unit_low: float = _sum("low end of the running intersection, on [0, 1]", 1.0)
    unit_high: float = _sum("high end of the running intersection, on [0, 1]", 1.0, 1.0)

    def __post_init__(self) -> None:
        validate(self)
        ordered(self, "clipped", "count")
        if self.count == 0 and self._state().tolist() != initial_mean_state_nb().tolist():
            raise ConfigError("a MeanSequence that has seen no decision has empty sums")
        if self.unit_sum > self.count:
            raise ConfigError("unit_sum cannot exceed count: each mapped outcome is at most 1")

    @property
    def _log_term(self) -> float:
        return float(eb_log_term_nb(1.0 - self.confidence))

    def _state(self) -> np.ndarray:
        return np.array([float(getattr(self, name)) for name in MEAN_STATE])

    def _set_state(self, state: np.ndarray) -> None:
        for name, value in zip(MEAN_STATE, state.tolist(), strict=True):
            setattr(self, name, int(value) if name in ("count", "clipped") else value)

    def update(self, outcome: float) -> None:
        """Take one outcome (a finite number; clipped to the bound)."""
        if isinstance(outcome, bool) or not isinstance(
            outcome, int | float | np.integer | np.floating
        ):
            raise DataValidationError(
                f"outcome must be a finite number, got {outcome!r}", source="outcomes"
            )
        self.update_many(np.array([outcome], dtype=np.float64))

    def update_many(self, outcomes: np.ndarray) -> None:
        """Take outcomes in order (1-D, finite): the same as one :meth:`update` each, by the
        same kernel. Nothing is taken if any outcome is not finite."""
        values = _check_outcomes(outcomes)
        state = self._state()
        mean_sequence_update_nb(state, values, self.bound, self._log_term)
        self._set_state(state)

    def interval(self) -> tuple[float, float]:
        """``(low, high)`` in outcome units: the running intersection of the intervals so far;
        ``(-bound, bound)`` before the first decision (T-SEQ-5)."""
        return (
            float(outcome_units_nb(self.unit_low, self.bound)),
            float(outcome_units_nb(self.unit_high, self.bound)),
        )

    def estimate(self) -> float:
        """The mean of the clipped outcomes so far; NaN before the first decision."""
        if not self.count:
            return math.nan
        return float(outcome_units_nb(self.unit_sum / self.count, self.bound))

    def decide(self, tolerance: float) -> str:
        """``"promote"`` if the interval lies above 0, ``"roll back"`` if it lies below
        ``-tolerance``, else ``"continue"`` (T-SEQ-6)."""
        tolerance = _real(tolerance, "tolerance")
        if tolerance < 0.0:
            raise ConfigError(f"tolerance must be >= 0, got {tolerance!r}", name="tolerance")
        state = self._state()
        return VERDICTS[int(verdict_nb(state[UNIT_LOW], state[UNIT_HIGH], self.bound, tolerance))]

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain numbers (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeanSequence:
        """The sequence :meth:`to_dict` wrote, validated."""
        return _from_dict(cls, data)


def decisions_to_verdict(
    edge: float,
    spread: float,
    bound: float,
    *,
    confidence: float = 0.95,
    tolerance: float = 0.0,
) -> float:
    """Outcomes a :class:`MeanSequence` needs before it decides, projected (T-SEQ-7).

    The expected running sums of outcomes of mean ``edge`` and standard deviation ``spread``
    are put into the sequence's bets, penalties and interval; the projection is the first
    decision at which that interval gives a verdict. Clipping is ignored (``spread`` well inside
    ``bound``).

    Parameters
    ----------
    edge : float
        Mean outcome, in outcome units, inside ``(-bound, bound)``.
    spread : float
        Standard deviation of an outcome, in outcome units, ``>= 0``; with ``edge`` it must fit
        within the bound (``spread^2 <= bound^2 - edge^2``).
    bound : float
        The sequence's clipping bound.
    confidence : float
        The sequence's confidence.
    tolerance : float
        The decision rule's tolerance, ``>= 0``.

    Returns
    -------
    float
        Decisions; ``inf`` when ``-tolerance <= edge <= 0`` (no verdict is ever due).
    """
    confidence = check_probability(confidence, "confidence")
    edge, spread = _real(edge, "edge"), _real(spread, "spread")
    bound, tolerance = _real(bound, "bound"), _real(tolerance, "tolerance")
    if bound <= 0.0:
        raise ConfigError(f"bound must be positive, got {bound!r}", name="bound")
    if tolerance < 0.0:
        raise ConfigError(f"tolerance must be >= 0, got {tolerance!r}", name="tolerance")
    if not -bound < edge < bound:
        raise ConfigError(f"edge must be inside (-bound, bound), got {edge!r}", name="edge")
    if spread < 0.0 or spread**2 > (bound - edge) * (bound + edge):
        raise ConfigError(
            f"spread must be >= 0 and fit within the bound (spread^2 <= bound^2 - edge^2 = "
            f"{(bound - edge) * (bound + edge):g}), got {spread!r}",
            name="spread",
        )
    if -tolerance <= edge <= 0.0:
        return math.inf
    mean = (edge + bound) / (2.0 * bound)
    variance = spread**2 / (4.0 * bound**2)
    log_term = eb_log_term_nb(1.0 - confidence)
    return float(projected_decisions_nb(mean, variance, bound, tolerance, log_term))


# --- simulated outcomes and the naive baseline (T-SEQ-8) -------------------------------------


def simulated_outcomes(
    streams: int,
    decisions: int,
    *,
    edge: float = 0.0,
    spread: float = 1.0,
    seed: int = 0,
    degrees: float = 5.0,
    arch: float = 0.08,
    garch: float = 0.87,
) -> np.ndarray:
    """Outcomes with clustered volatility and fat tails, and a constant conditional mean.

    ``edge + spread z_t`` with ``z_t`` a GARCH(1,1) process (``arch``, ``garch``) driven by
    Student-t shocks of ``degrees`` degrees of freedom scaled to unit variance, started at its
    unconditional variance 1: the conditional mean is ``edge`` at every decision, and the
    shocks are symmetric, so clipping at a symmetric bound keeps a zero edge at zero.

    Returns
    -------
    ndarray, shape (decisions, streams)
    """
    if not (arch >= 0.0 and garch >= 0.0 and arch + garch < 1.0):
        raise ConfigError(f"arch and garch must be >= 0 with a sum below 1, got {arch}, {garch}")
    if not degrees > 2.0:
        raise ConfigError(f"degrees must exceed 2 (a finite variance), got {degrees!r}")
    rng = np.random.default_rng(seed)
    shocks = rng.standard_t(degrees, size=(decisions, streams))
    shocks *= math.sqrt((degrees - 2.0) / degrees)
    garch_scale_nb(shocks, 1.0 - arch - garch, arch, garch)
    shocks *= spread
    shocks += edge
    return shocks


def repeated_t_test_first_rejection(outcomes: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """First decision (1-based, -1 if never) at which a two-sided fixed-sample t-test of a zero
    mean at level ``1 - confidence`` rejects, when it is repeated after every decision: what a
    monitor without a confidence sequence would do (T-SEQ-8).

    ``outcomes`` has shape (decisions, streams); returns int64 of shape (streams,).
    """
    confidence = check_probability(confidence, "confidence")
    decisions = outcomes.shape[0]
    critical = np.full(decisions, np.inf)
    degrees = np.arange(1, decisions)
    critical[1:] = stats.t.ppf(0.5 + confidence / 2.0, degrees)
    return repeated_t_test_first_rejection_nb(
        np.ascontiguousarray(outcomes, dtype=np.float64), critical
    )
