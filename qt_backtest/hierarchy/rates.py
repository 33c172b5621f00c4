"""The rates operators watch during the rollout (H-ROLL-2 to H-ROLL-7), with their target bands.

All functions take the frame returned by :func:`qt_backtest.hierarchy.replay.replay`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest.parameters import document_parameters, param, validate

RATES = (
    "escalation_rate",
    "defer_rate",
    "arbiter_invocation_rate",
    "override_rate_when_called",
    "ensemble_source_share",
    "arbiter_source_share",
)


def _band(default: tuple[float, float], name: str, rule: str) -> Any:
    """A target band (low, high) of one rate."""

    def check(value: Any) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"{name} band must satisfy 0 <= low <= high <= 1, got {low, high}")
        return (float(low), float(high))

    return param(
        default,
        doc=f"target band (low, high) of the {name.replace('_', ' ')} rate",
        kind="other",
        check=check,
        accepts="(low, high) with 0 <= low <= high <= 1",
        unit="share",
        rule=rule,
    )


@document_parameters
@dataclass(frozen=True)
class RateTargets:
    """Target bands (inclusive, as fractions) from the rollout plan.

    The plan states the final source split as "about 85 % / 15 %"; the bands of
    ``source_tolerance`` (5 points) either side make that testable.
    """

    escalation: tuple[float, float] = _band((0.20, 0.30), "escalation", "H-ROLL-2")
    defer: tuple[float, float] = _band((0.70, 0.80), "defer", "H-ROLL-3")
    arbiter_invocation: tuple[float, float] = _band((0.20, 0.30), "arbiter_invocation", "H-ROLL-4")
    override_when_called: tuple[float, float] = _band(
        (0.40, 0.60), "override_when_called", "H-ROLL-5"
    )
    ensemble_share: float = param(
        0.85,
        doc="target share of final decisions taken by the ensemble",
        low=0.0,
        high=1.0,
        unit="share of bars",
        rule="H-ROLL-6",
    )
    source_tolerance: float = param(
        0.05,
        doc="band either side of the target source shares",
        low=0.0,
        high=1.0,
        unit="share of bars",
        rule="H-ROLL-6",
    )

    def __post_init__(self) -> None:
        validate(self)

    def bands(self) -> dict[str, tuple[float, float]]:
        share, tolerance = self.ensemble_share, self.source_tolerance
        return {
            "escalation_rate": self.escalation,
            "defer_rate": self.defer,
            "arbiter_invocation_rate": self.arbiter_invocation,
            "override_rate_when_called": self.override_when_called,
            "ensemble_source_share": (share - tolerance, share + tolerance),
            "arbiter_source_share": (1 - share - tolerance, 1 - share + tolerance),
        }


def _counts(decisions: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-bar indicator columns whose sums make every rate's numerator and denominator."""
    ran = decisions["meta_decision"].notna().to_numpy()
    escalated = (decisions["meta_decision"] == "ESCALATE").to_numpy()
    called = decisions["gate"].notna().to_numpy()
    overridden = (decisions["gate"] == "override").to_numpy()
    from_arbiter = (decisions["source"] == "arbiter").to_numpy()
    return {
        "bars": np.ones(len(decisions)),
        "meta_ran": ran.astype(float),
        "escalations": escalated.astype(float),
        "deferrals": (ran & ~escalated).astype(float),
        "arbiter_calls": called.astype(float),
        "overrides": overridden.astype(float),
        "arbiter_decided": from_arbiter.astype(float),
        "ensemble_decided": (~from_arbiter).astype(float),
    }


# rate -> (numerator, denominator)
_DEFINITIONS = {
    "escalation_rate": ("escalations", "meta_ran"),
    "defer_rate": ("deferrals", "meta_ran"),
    "arbiter_invocation_rate": ("arbiter_calls", "meta_ran"),
    "override_rate_when_called": ("overrides", "arbiter_calls"),
    "ensemble_source_share": ("ensemble_decided", "bars"),
    "arbiter_source_share": ("arbiter_decided", "bars"),
}


def _table(sums: dict[str, float], targets: RateTargets) -> pd.DataFrame:
    rows = []
    for rate, (numerator, denominator) in _DEFINITIONS.items():
        low, high = targets.bands()[rate]
        count, base = sums[numerator], sums[denominator]
        value = count / base if base else np.nan
        rows.append(
            {
                "rate": rate,
                "value": value,
                "numerator": int(count),
                "denominator": int(base),
                "target_low": low,
                "target_high": high,
                "passes": bool(low <= value <= high) if base else False,
            }
        )
    return pd.DataFrame(rows).set_index("rate")


def decision_rates(
    decisions: pd.DataFrame, targets: RateTargets | None = None, by: str | None = None
) -> pd.DataFrame:
    """Every rollout rate (H-ROLL-2 to H-ROLL-6) over the whole run (or per group), with its band
    and pass flag.

    Parameters
    ----------
    decisions : DataFrame
        Output of :func:`~qt_backtest.hierarchy.replay.replay`.
    targets : RateTargets, optional
        Target bands; the rollout plan's by default.
    by : str, optional
        A column or index level to group by (e.g. ``"symbol"``).

    Returns
    -------
    DataFrame with one row per rate (per group, under a leading index level when ``by``):
    ``value``, ``numerator``, ``denominator``, ``target_low``, ``target_high``, ``passes``.
    A rate whose denominator is 0 is NaN and does not pass.
    """
    targets = targets or RateTargets()
    counts = pd.DataFrame(_counts(decisions), index=decisions.index)
    if by is None:
        return _table(counts.sum().to_dict(), targets)
    if by in decisions.columns:
        keys = decisions[by].to_numpy()
    elif by in (decisions.index.names or []):
        keys = decisions.index.get_level_values(by)
    else:
        raise ValueError(f"no column or index level named {by!r} to group the rates by")
    grouped = counts.groupby(keys, sort=True).sum()
    tables = {key: _table(row.to_dict(), targets) for key, row in grouped.iterrows()}
    return pd.concat(tables, names=[by, "rate"])


def rolling_rates(
    decisions: pd.DataFrame, window: int, targets: RateTargets | None = None
) -> pd.DataFrame:
    """Each rate over the trailing ``window`` bars (the bar itself included), per bar.

    Returns a frame indexed like ``decisions`` with one column per rate and a boolean
    ``<rate>_passes`` column each. The first ``window - 1`` bars are NaN (and do not pass).
    Rows are taken in their order: pass one symbol at a time.
    """
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window must be a positive number of bars, got {window!r}")
    targets = targets or RateTargets()
    counts = pd.DataFrame(_counts(decisions), index=decisions.index)
    sums = counts.rolling(window, min_periods=window).sum()
    result = pd.DataFrame(index=decisions.index)
    for rate, (numerator, denominator) in _DEFINITIONS.items():
        base = sums[denominator]
        value = sums[numerator] / base.where(base > 0)
        low, high = targets.bands()[rate]
        result[rate] = value
        result[f"{rate}_passes"] = (value >= low) & (value <= high)
    return result
