"""Rollout rates (H-ROLL-2 to H-ROLL-7): hand-counted cases, grouping, rolling windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qt_backtest.hierarchy.rates import RateTargets, decision_rates, rolling_rates


def decisions(rows):
    """rows of (meta_decision or None, gate or None, source)."""
    return pd.DataFrame(rows, columns=["meta_decision", "gate", "source"])


ROWS = (
    [("DEFER", None, "ensemble")] * 7
    + [("ESCALATE", "override", "arbiter")] * 1
    + [("ESCALATE", "defer_low_confidence", "ensemble")] * 1
    + [("ESCALATE", "defer_hold", "ensemble")] * 1
    + [(None, None, "ensemble")] * 2  # fewer than 2 active models: Meta did not run
)


def test_rates_by_hand():
    table = decision_rates(decisions(ROWS))
    assert table.loc["escalation_rate", "value"] == pytest.approx(3 / 10)
    assert table.loc["defer_rate", "value"] == pytest.approx(7 / 10)
    assert table.loc["arbiter_invocation_rate", "value"] == pytest.approx(3 / 10)
    assert table.loc["override_rate_when_called", "value"] == pytest.approx(1 / 3)
    assert table.loc["ensemble_source_share", "value"] == pytest.approx(11 / 12)
    assert table.loc["arbiter_source_share", "value"] == pytest.approx(1 / 12)
    assert table.loc["escalation_rate", ["numerator", "denominator"]].tolist() == [3, 10]
    assert table["passes"].to_dict() == {
        "escalation_rate": True,
        "defer_rate": True,
        "arbiter_invocation_rate": True,
        "override_rate_when_called": False,  # 33 % < 40 %
        "ensemble_source_share": False,  # 91.7 % > 90 %
        "arbiter_source_share": False,
    }


def test_meta_mode_has_no_arbiter_calls_and_rates_do_not_pass_on_empty_denominators():
    table = decision_rates(decisions([("ESCALATE", None, "ensemble"), ("DEFER", None, "ensemble")]))
    assert np.isnan(table.loc["override_rate_when_called", "value"])
    assert not table.loc["override_rate_when_called", "passes"]
    assert table.loc["arbiter_invocation_rate", "value"] == 0.0


def test_rates_per_symbol():
    frame = decisions(ROWS + ROWS[:7])
    frame["symbol"] = ["BTC"] * len(ROWS) + ["ETH"] * 7
    table = decision_rates(frame, by="symbol")
    assert table.loc[("BTC", "escalation_rate"), "value"] == pytest.approx(0.3)
    assert table.loc[("ETH", "defer_rate"), "value"] == 1.0
    assert table.loc[("ETH", "escalation_rate"), "passes"] == False  # noqa: E712
    with pytest.raises(ValueError, match="no column or index level named 'venue'"):
        decision_rates(frame, by="venue")


def test_rolling_rates_equal_rates_of_each_window():
    rng = np.random.default_rng(4)
    rows = [ROWS[k] for k in rng.integers(0, len(ROWS), 200)]
    frame = decisions(rows)
    rolling = rolling_rates(frame, 25)
    assert (
        rolling.iloc[:24]
        .drop(columns=[c for c in rolling if c.endswith("_passes")])
        .isna()
        .all()
        .all()
    )
    for end in (24, 60, 199):
        direct = decision_rates(frame.iloc[end - 24 : end + 1])
        for rate in direct.index:
            expected = direct.loc[rate, "value"]
            assert rolling[rate].iloc[end] == pytest.approx(expected, nan_ok=True)
            assert rolling[f"{rate}_passes"].iloc[end] == direct.loc[rate, "passes"]
    with pytest.raises(ValueError, match="window must be a positive number of bars"):
        rolling_rates(frame, 0)


def test_targets_validation_and_custom_bands():
    with pytest.raises(ValueError, match="escalation band"):
        RateTargets(escalation=(0.5, 0.2))
    table = decision_rates(decisions(ROWS), RateTargets(override_when_called=(0.3, 0.4)))
    assert table.loc["override_rate_when_called", "passes"]


def test_rates_on_a_replay():
    from qt_backtest.hierarchy.replay import decode, replay_arrays

    rng = np.random.default_rng(2)
    bars = 5000
    outputs = replay_arrays(
        rng.integers(-1, 2, (bars, 4)).astype(np.int8),
        rng.uniform(0.4, 0.9, (bars, 4)),
        rng.uniform(0, 1, (bars, 4)) > 0.2,
        np.full((bars, 6), np.nan),
    )
    frame = decode(outputs, pd.RangeIndex(bars))
    table = decision_rates(frame)
    escalated = int((outputs["meta_decision"] == 1).sum())
    ran = int((outputs["meta_decision"] >= 0).sum())
    assert table.loc["escalation_rate", ["numerator", "denominator"]].tolist() == [escalated, ran]
    assert table.loc["override_rate_when_called", "numerator"] == int((outputs["gate"] == 0).sum())
    assert table.loc["arbiter_source_share", "numerator"] == int(outputs["source"].sum())
