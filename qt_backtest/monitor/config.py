"""Settings of the rollout monitor: one frozen, validated dataclass."""

from __future__ import annotations

from dataclasses import dataclass

from qt_backtest.errors import ConfigError
from qt_backtest.hierarchy.rates import RateTargets
from qt_backtest.parameters import document_parameters, param, validate

#: The stages a monitor can watch (H-ROLL-1): Meta on with escalations falling back to the
#: ensemble, then the Arbiter on.
STAGES = ("meta", "meta_arbiter")


@document_parameters
@dataclass(frozen=True)
class MonitorConfig:
    """What a rollout monitor watches and when it decides (H-MON-1 to H-MON-6)."""

    stage: str = param(
        "meta_arbiter",
        doc="the rollout stage being watched",
        kind="choice",
        choices=STAGES,
        rule="H-MON-1",
    )
    confidence: float = param(
        0.95,
        doc="level of every confidence sequence, valid at all times at once",
        low=0.0,
        high=1.0,
        inclusive="neither",
        unit="probability",
        rule="H-MON-3",
    )
    outcome_bound: float = param(
        0.05,
        doc="an override's paired outcome is clipped to plus or minus this before it is averaged",
        low=0.0,
        high=1.0,
        inclusive="high",
        unit="fraction of equity",
        rule="H-MON-4",
    )
    tolerance: float = param(
        0.0,
        doc="roll back when the mean paired outcome is below minus this with confidence",
        low=0.0,
        high=1.0,
        inclusive="low",
        unit="fraction of equity",
        rule="H-MON-4",
    )
    expected_edge: float | None = param(
        None,
        doc="mean paired outcome of an override expected from the backtest (None: estimated "
        "from the history before the monitored span when votes are given)",
        low=-1.0,
        high=1.0,
        nullable=True,
        unit="fraction of equity",
        rule="H-MON-5",
    )
    expected_spread: float | None = param(
        None,
        doc="standard deviation of an override's paired outcome expected from the backtest",
        low=0.0,
        high=1.0,
        inclusive="neither",
        nullable=True,
        unit="fraction of equity",
        rule="H-MON-5",
    )
    targets: RateTargets = param(
        default_factory=RateTargets,
        doc="target bands of the rollout rates",
        kind="section",
        section=RateTargets,
        rule="H-MON-2",
    )

    def __post_init__(self) -> None:
        validate(self)
        if (self.expected_edge is None) != (self.expected_spread is None):
            raise ConfigError(
                "expected_edge and expected_spread go together: give both or neither, got "
                f"expected_edge={self.expected_edge!r}, expected_spread={self.expected_spread!r}"
            )
