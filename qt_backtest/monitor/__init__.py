"""Rollout monitoring of the live hierarchy (docs/monitor.md): the journal read incrementally
(:mod:`~qt_backtest.monitor.journal`), override outcomes bar by bar
(:mod:`~qt_backtest.monitor.outcomes`), records on their bars
(:mod:`~qt_backtest.monitor.tracking`), rates and verdicts (:mod:`~qt_backtest.monitor.rates`,
:mod:`~qt_backtest.monitor.watch`), the monitor itself (:mod:`~qt_backtest.monitor.monitor`),
history as if live (:mod:`~qt_backtest.monitor.history`), its page
(:mod:`~qt_backtest.monitor.page`) and command (:mod:`~qt_backtest.monitor.command`)."""
