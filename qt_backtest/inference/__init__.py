"""Verdicts with uncertainty: paired tests of the layers, multiple testing across sweeps,
track-record lengths and rollout power, and anytime-valid confidence sequences for monitoring
a rollout."""

from qt_backtest.inference.multiple import (
    model_confidence_set,
    reality_check,
    spa_test,
    stepm,
)
from qt_backtest.inference.paired import METRICS, paired_bootstrap
from qt_backtest.inference.resample import optimal_block_length, stationary_indices
from qt_backtest.inference.returns import period_returns
from qt_backtest.inference.sequential import (
    MeanSequence,
    ProportionSequence,
    decisions_to_verdict,
)
from qt_backtest.inference.sharpe import (
    bootstrap_sharpe_difference_test,
    expected_max_sharpe,
    iid_sharpe_difference_test,
    min_backtest_length,
    min_track_record_length,
    probabilistic_sharpe_ratio,
    rollout_power,
    sharpe_difference_test,
)
from qt_backtest.inference.verdict import Verdicts, VerdictSettings, layer_verdicts

__all__ = [
    "METRICS",
    "MeanSequence",
    "ProportionSequence",
    "VerdictSettings",
    "Verdicts",
    "bootstrap_sharpe_difference_test",
    "decisions_to_verdict",
    "expected_max_sharpe",
    "iid_sharpe_difference_test",
    "layer_verdicts",
    "min_backtest_length",
    "min_track_record_length",
    "model_confidence_set",
    "optimal_block_length",
    "paired_bootstrap",
    "period_returns",
    "probabilistic_sharpe_ratio",
    "reality_check",
    "rollout_power",
    "sharpe_difference_test",
    "spa_test",
    "stationary_indices",
    "stepm",
]
