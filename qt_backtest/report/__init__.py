"""Self-contained HTML performance reports: a study (comparison, decisions, rollout check,
override values, model reliability, sweep and overfitting controls, trades) rendered to one
file that opens without a network."""

from qt_backtest.report.build import render_report, write_report
from qt_backtest.report.study import StudyResult, SweepSummary, load_study, run_study

__all__ = [
    "StudyResult",
    "SweepSummary",
    "load_study",
    "render_report",
    "run_study",
    "write_report",
]
