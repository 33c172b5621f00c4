"""``qt-backtest monitor SETTINGS``: the rollout monitor from the command line (H-MON-1, H-MON-6).

Each run reads the journal lines added since the previous run (the state is kept beside the
settings file), prints one status block per symbol and pooled, saves the state atomically and
writes the page. ``--follow`` keeps tailing the journal; ``--history START`` runs the monitor
over past data instead, as a rollout starting at START would have seen it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from qt_backtest.errors import UsageError
from qt_backtest.monitor.monitor import Monitor
from qt_backtest.monitor.page import sentences, write_monitor_page

#: Seconds between two reloads of the bars while following a journal.
BARS_RELOAD_SECONDS = 60.0


def _state_path(settings: Any, given: str | None) -> Path:
    if given:
        return Path(given)
    configured = settings.monitor_files.get("state")
    if configured:
        return settings.resolve(configured)
    assert settings.path is not None
    return settings.path.with_name(settings.path.stem + ".monitor-state.json")


def _page_path(settings: Any, given: str | None) -> Path:
    if given:
        return Path(given)
    configured = settings.monitor_files.get("out")
    return settings.resolve(configured) if configured else Path("reports/monitor.html")


def _print_status(monitor: Monitor) -> None:
    for sentence in sentences(monitor):
        print(sentence)
    if monitor.config.stage == "meta_arbiter":
        from qt_backtest.monitor.page import rate_sentence

        for name, rates in monitor.rate_tables().items():
            print(rate_sentence(name, rates))


def _bars(settings: Any) -> dict[str, pd.DataFrame]:
    """The settings' bars, or none when [data] names none (the Meta stage needs none)."""
    from qt_backtest.cli import load_bars

    if not settings.samples and not settings.files:
        if settings.monitor.stage == "meta_arbiter":
            raise UsageError(
                "the Arbiter stage values its overrides on the market bars: give [data] "
                "samples or files for the journal's symbols"
            )
        return {}
    return load_bars(settings)


def _new_monitor(
    settings: Any, bars: dict[str, pd.DataFrame], before: str | None = None
) -> Monitor:
    """A fresh monitor, with the backtest's projection when votes are at hand (H-MON-5), from
    the bars before ``before`` (all of them by default)."""
    monitor = Monitor(
        settings.monitor,
        settings.rules,
        settings.hierarchy.min_trade_confidence,
        year=settings.monitor_files.get("year"),
    )
    if (
        settings.monitor.stage == "meta_arbiter"
        and settings.monitor.expected_edge is None
        and (settings.predictions or settings.train)
        and bars
    ):
        from qt_backtest.cli import load_votes
        from qt_backtest.monitor.history import plan_from_history

        plan_from_history(
            monitor,
            bars,
            load_votes(settings, bars),
            settings.hierarchy,
            settings.indicators,
            before=before,
        )
    if monitor.expectations:
        from qt_backtest.monitor.page import plan_sentence

        print("Before the stage starts, from the backtest:")
        for symbol in monitor.expectations:
            print(f"  {plan_sentence(monitor, symbol)}")
    return monitor


def command_monitor(args: argparse.Namespace) -> int:
    from qt_backtest.settings import load_settings

    settings = load_settings(args.settings)
    if args.history is not None:
        for given, flag in ((args.follow, "--follow"), (args.state, "--state")):
            if given:
                raise UsageError(f"{flag} does not apply to --history (it keeps no state)")
        return _history(settings, args)
    if args.end:
        raise UsageError("--end applies to --history only")
    if args.follow and not args.poll > 0:
        raise UsageError(f"--poll must be a positive number of seconds, got {args.poll!r}")
    journal = settings.monitor_files.get("journal")
    if not journal and not (settings.predictions or settings.train):
        raise UsageError(
            "the monitor needs [monitor] journal = the live engine's journal file, or a "
            "prediction store ([predictions]) with [monitor] start"
        )
    state_path = _state_path(settings, args.state)
    if not journal:
        if args.follow:
            raise UsageError("--follow reads a journal; a prediction store is read once per run")
        return _from_predictions(settings, state_path, _page_path(settings, args.out))
    journal_path = settings.resolve(journal)
    bars = _bars(settings)
    monitor = _load_or_new(settings, state_path, bars)
    page = _page_path(settings, args.out)
    _read_once(monitor, journal_path, bars)
    _publish(monitor, state_path, page)
    if args.follow:
        _follow(monitor, journal_path, settings, state_path, page, args.poll)
    return 0


def _load_or_new(
    settings: Any, state_path: Path, bars: dict[str, pd.DataFrame], before: str | None = None
) -> Monitor:
    if state_path.exists():
        return Monitor.load(
            state_path,
            settings.monitor,
            settings.rules,
            settings.hierarchy.min_trade_confidence,
            settings.monitor_files.get("year"),
        )
    return _new_monitor(settings, bars, before)


def _from_predictions(settings: Any, state_path: Path, page: Path) -> int:
    """The stage replayed over a prediction store's votes, read as its journal (H-MON-1): each
    run adds the decisions after those the state has seen."""
    from dataclasses import replace

    from qt_backtest.cli import load_votes
    from qt_backtest.monitor.history import journal_since

    start = settings.monitor_files.get("start")
    if not start:
        raise UsageError("reading a prediction store needs [monitor] start, the stage's first day")
    bars = _bars(settings)
    votes = load_votes(settings, bars)
    monitor = _load_or_new(settings, state_path, bars, before=start)
    hierarchy = replace(settings.hierarchy, mode=settings.monitor.stage)
    timed = journal_since(
        bars, votes, start, monitor.store_times, hierarchy=hierarchy, inputs=settings.indicators
    )
    records = monitor.feed((line + "\n" for _, _, line in timed), bars)
    for written, symbol, _ in timed:
        monitor.store_times[symbol] = written.isoformat()
    print(f"prediction store: {records:,} new decision records")
    _publish(monitor, state_path, page)
    return 0


def _read_once(monitor: Monitor, journal: Path, bars: dict[str, pd.DataFrame]) -> None:
    from qt_backtest.monitor.journal import read_new_lines

    lines, position = read_new_lines(journal, monitor.position)
    monitor.catch_up(bars)
    records = monitor.feed(lines, bars)
    monitor.position = position
    print(f"{journal.name}: {len(lines):,} new lines, {records:,} decision records")


def _publish(monitor: Monitor, state: Path, page: Path) -> None:
    monitor.save(state)
    _print_status(monitor)
    written = write_monitor_page(monitor, page)
    print(f"state saved in {state.resolve()}; page written to {written.resolve()}")


def _follow(
    monitor: Monitor,
    journal: Path,
    settings: Any,
    state: Path,
    page: Path,
    poll: float,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Read, publish and wait, until interrupted (or ``stop`` says so)."""
    from qt_backtest.monitor.journal import follow

    bars = _bars(settings)
    loaded = time.monotonic()
    for lines in follow(journal, monitor.position, poll_seconds=poll, stop=stop):
        if time.monotonic() - loaded > BARS_RELOAD_SECONDS and any(
            track.waiting for track in monitor.tracks.values()
        ):
            bars, loaded = _bars(settings), time.monotonic()
            monitor.catch_up(bars)
        monitor.feed(lines, bars)
        monitor.position = lines.position
        _publish(monitor, state, page)


def _history(settings: Any, args: argparse.Namespace) -> int:
    from qt_backtest.cli import load_votes
    from qt_backtest.monitor.history import monitor_history

    bars = _bars(settings)
    if not bars:
        raise UsageError("--history needs [data] bars and [predictions] votes")
    start = args.history or settings.monitor_files.get("start")
    if not start:
        raise UsageError("--history needs a START date, or [monitor] start in the settings")
    votes = load_votes(settings, bars)
    run = monitor_history(
        bars,
        votes,
        start,
        config=settings.monitor,
        hierarchy=settings.hierarchy,
        rules=settings.rules,
        inputs=settings.indicators,
        end=args.end or settings.monitor_files.get("end"),
    )
    print(f"rollout of the {settings.monitor.stage} stage from {start}, as if live:")
    if run.monitor.expectations:
        from qt_backtest.monitor.page import plan_sentence

        print("before the start, from the backtest on the bars before it:")
        for symbol in run.monitor.expectations:
            print(f"  {plan_sentence(run.monitor, symbol)}")
    for symbol, row in run.decided.iterrows():
        when = "never" if pd.isna(row["day"]) else f"on {row['day']:%Y-%m-%d}"
        print(f"  {symbol}: first verdict {row['verdict']} ({when})")
    _print_status(run.monitor)
    page = _page_path(settings, args.out)
    written = write_monitor_page(run.monitor, page, run.timeline, "Rollout monitor, as if live")
    print(f"page written to {written.resolve()}")
    return 0
