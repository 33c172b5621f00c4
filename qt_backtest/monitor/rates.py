"""Which rollout rates a journal record moves (H-MON-2), and the verdict on one rate.

Every rate of H-ROLL-2 to H-ROLL-6 is a proportion: a record is either in its denominator or
not, and when it is, it is either a success (in the numerator) or not. The monitor keeps one
confidence sequence per rate (T-SEQ) and updates it with exactly these events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from qt_backtest.hierarchy.rates import RATES, RateTargets

#: Arbiter outcomes of a record in which the Arbiter was called (not merely unavailable).
CALLED = ("override", "defer_low_confidence", "defer_hold")

#: Rates watched at each stage: with the Arbiter off every escalation falls back to the
#: ensemble, so its rates say nothing about the Arbiter.
STAGE_RATES = {"meta": ("escalation_rate", "defer_rate"), "meta_arbiter": RATES}


def present(value: Any) -> bool:
    """Whether a journal record's field holds a value (absent fields are None, NaN or NaT)."""
    return (
        value is not None
        and value is not pd.NaT
        and not (isinstance(value, float) and math.isnan(value))
    )


def rate_events(record: Mapping[str, Any]) -> dict[str, bool]:
    """``{rate: success}`` for every rate whose denominator holds this record (H-MON-2).

    A record in which Meta did not run counts only towards the source shares; an Arbiter that
    was not available is not a call.
    """
    meta = record.get("meta_decision")
    outcome = record.get("arbiter_outcome")
    outcome = outcome if present(outcome) else None
    overridden = outcome == "override"
    events = {
        "ensemble_source_share": not overridden,
        "arbiter_source_share": overridden,
    }
    if present(meta):
        escalated = meta == "ESCALATE"
        called = outcome in CALLED
        events["escalation_rate"] = escalated
        events["defer_rate"] = not escalated
        events["arbiter_invocation_rate"] = called
        if called:
            events["override_rate_when_called"] = overridden
    return events


def count_events(records: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """``{rate: (successes, count)}`` of records (:func:`rate_events` summed), and
    ``"records": (0, number of records)``."""
    records_seen = meta_ran = escalated = called = overridden = overridden_called = 0
    for record in records:
        records_seen += 1
        outcome = record.get("arbiter_outcome")
        is_override = outcome == "override"
        overridden += is_override
        if present(record.get("meta_decision")):
            meta_ran += 1
            escalated += record["meta_decision"] == "ESCALATE"
            if outcome in CALLED:
                called += 1
                overridden_called += is_override
    return {
        "records": (0, records_seen),
        "escalation_rate": (escalated, meta_ran),
        "defer_rate": (meta_ran - escalated, meta_ran),
        "arbiter_invocation_rate": (called, meta_ran),
        "override_rate_when_called": (overridden_called, called),
        "ensemble_source_share": (records_seen - overridden, records_seen),
        "arbiter_source_share": (overridden, records_seen),
    }


def add_counts(
    first: Mapping[str, tuple[int, int]], second: Mapping[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """Two :func:`count_events` results added."""
    return {key: (first[key][0] + second[key][0], first[key][1] + second[key][1]) for key in first}


def rate_verdict(low: float, high: float, band: tuple[float, float]) -> str:
    """``"inside"`` when the whole interval lies in the band, ``"outside"`` when none of it
    does, ``"undecided"`` otherwise (H-MON-2)."""
    band_low, band_high = band
    if band_low <= low and high <= band_high:
        return "inside"
    if high < band_low or low > band_high:
        return "outside"
    return "undecided"


def edges_to_clear(estimate: float, band: tuple[float, float]) -> tuple[float, ...]:
    """The band edges the interval must move past for a verdict, were the rate to stay at
    ``estimate``: both edges from inside the band, the nearer one from outside it."""
    band_low, band_high = band
    if estimate < band_low:
        return (band_low,)
    if estimate > band_high:
        return (band_high,)
    return tuple(edge for edge in (band_low, band_high) if edge not in (0.0, 1.0))


def bands(targets: RateTargets, stage: str) -> dict[str, tuple[float, float]]:
    """Target band of every rate watched at ``stage``."""
    every = targets.bands()
    return {rate: every[rate] for rate in STAGE_RATES[stage]}
