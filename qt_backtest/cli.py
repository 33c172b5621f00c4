"""``qt-backtest``: the command line.

Subcommands::

    qt-backtest run SETTINGS.toml        replay + backtest + HTML report
    qt-backtest sweep SETTINGS.toml      the same with a threshold sweep ([sweep.grid])
    qt-backtest report STUDY_FOLDER      render a saved study as HTML
    qt-backtest compare STUDY STUDY      two saved studies side by side
    qt-backtest replay-log JOURNAL       replay a live journal and diff it layer by layer
    qt-backtest data inspect|validate|resample FILE...

Exit codes: 0 success, 1 bad input (a one-line message names the problem), 2 bad usage,
3 an unexpected failure (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest import __version__
from qt_backtest.atomic import atomic_write
from qt_backtest.errors import CoverageWarning, QtBacktestError, UsageError

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _show_note(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one-line notes on stderr (a model slot without votes, say)."""
    kind = "note" if issubclass(category, CoverageWarning) else "warning"
    print(f"qt-backtest: {kind}: {message}", file=sys.stderr, flush=True)


class _FoldProgress:
    """Per-fold progress of one walk-forward training, with elapsed time and the rest."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.started = time.perf_counter()
        self.trained = False

    def __call__(self, done: int, total: int) -> None:
        if not self.trained:
            _say(f"training {self.what} walk-forward: {total} folds")
            self.trained = True
        elapsed = time.perf_counter() - self.started
        left = elapsed / done * (total - done)
        _say(
            f"  {self.what}: fold {done}/{total}, {_clock(elapsed)} elapsed, "
            f"about {_clock(left)} left"
        )

    def finish(self, cache: Path) -> None:
        if self.trained:
            elapsed = time.perf_counter() - self.started
            _say(f"trained {self.what} in {_clock(elapsed)} (cached in {cache})")
        else:
            _say(f"{self.what}: votes loaded from the cache in {cache}")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _window(frame: pd.DataFrame, start: str | None, end: str | None) -> pd.DataFrame:
    if start is not None:
        frame = frame.loc[pd.Timestamp(start, tz="UTC") :]
    if end is not None:
        frame = frame.loc[: pd.Timestamp(end, tz="UTC")]
    if frame.empty:
        raise UsageError(f"no bars between {start} and {end}")
    return frame


def load_bars(settings) -> dict[str, pd.DataFrame]:
    """The settings' bars by symbol."""
    from qt_backtest.data import load_ohlcv, load_sample

    bars: dict[str, pd.DataFrame] = {}
    for name in settings.samples:
        frame = load_sample(name, gaps=settings.gaps)
        bars[frame.attrs["symbol"]] = frame
    for name in settings.files:
        frame = load_ohlcv(settings.resolve(name), gaps=settings.gaps)
        symbol = frame.attrs.get("symbol")
        if not symbol:
            raise UsageError(
                f"cannot tell the symbol from the file name {Path(name).name!r}: name data "
                "files after their symbol, such as BTCUSDT-1h.csv"
            )
        if symbol in bars:
            raise UsageError(f"two data sources for {symbol}; give each symbol once")
        bars[symbol] = frame
    if not bars:
        raise UsageError("no data: give [data] samples and/or files")
    return {s: _window(frame, settings.start, settings.end) for s, frame in bars.items()}


def load_votes(settings, bars: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Votes by symbol, aligned to the bars: read from a file, or trained walk-forward."""
    from qt_backtest.backtest.window import check_prediction_alignment
    from qt_backtest.data import per_symbol
    from qt_backtest.signals import WalkForward, read_predictions, votes_from_walk_forward
    from qt_backtest.signals.cache import cached_walk_forward

    models = settings.hierarchy.models
    if settings.predictions:
        predictions = read_predictions(settings.resolve(settings.predictions))
        stacked = isinstance(predictions.index, pd.MultiIndex)
        by_symbol = per_symbol(predictions) if stacked else {}
        votes = {}
        for symbol, frame in bars.items():
            if stacked:
                if symbol not in by_symbol:
                    raise UsageError(f"the predictions have no votes for {symbol}")
                part = by_symbol[symbol]
            elif len(bars) == 1:
                part = predictions
            else:
                raise UsageError("predictions without a symbol level cannot serve several symbols")
            unknown = {c.rsplit("_", 1)[0] for c in part.columns} - set(models)
            if unknown:
                raise UsageError(
                    f"predictions name model(s) {sorted(unknown)} that the hierarchy's models "
                    f"{list(models)} do not include"
                )
            check_prediction_alignment(f"predictions for {symbol}", part.index, frame.index)
            votes[symbol] = part.reindex(frame.index)
        return votes
    if settings.train:
        from qt_backtest.data.interval import infer_interval
        from qt_backtest.settings import WALK_FORWARD_DEFAULTS

        cache = settings.resolve(settings.cache_dir)
        votes = {}
        for symbol, frame in bars.items():
            interval = frame.attrs.get("interval") or infer_interval(frame.index)
            splitter = WalkForward.from_spans(
                interval, **{**WALK_FORWARD_DEFAULTS, **settings.walk_forward}
            )
            runs = {}
            for model in settings.train:
                progress = _FoldProgress(f"{model} on {symbol}")
                runs[model] = cached_walk_forward(
                    frame,
                    model,
                    splitter,
                    cache,
                    # folds at once share the cores (None); alone, a fold takes two threads
                    n_jobs=2 if settings.workers == 1 else None,
                    workers=settings.workers,
                    on_fold=progress,
                )
                progress.finish(cache)
            votes[symbol] = votes_from_walk_forward(runs)
        return votes
    raise UsageError("no votes: give [predictions] file = ... or train = [...]")


def _study(settings, with_sweep: bool):
    from qt_backtest.report import run_study
    from qt_backtest.sweep import Grid

    started = time.perf_counter()
    bars = load_bars(settings)
    _say(f"{len(bars)} symbol(s): {', '.join(bars)}; loading votes")
    votes = load_votes(settings, bars)
    grid = None
    options = {}
    metric = "sharpe"
    if with_sweep:
        sweep = dict(settings.sweep)
        axes = sweep.pop("grid", None)
        if not axes:
            raise UsageError("the sweep needs a [sweep.grid] table of parameter = [values]")
        grid = Grid.product(axes)
        if "sample" in sweep:
            grid = grid.sample(int(sweep.pop("sample")), seed=int(sweep.pop("seed", 0)))
        sweep.pop("seed", None)
        sweep.pop("out", None)
        metric = sweep.pop("metric", "sharpe")
        options = {"progress": True, **sweep}
        if "cache_dir" in options:
            options["cache_dir"] = settings.resolve(options["cache_dir"])
        _say(f"sweeping {len(grid):,} combinations x {len(bars)} symbol(s)")
    _say("replaying the hierarchy, backtesting the rollout stages, valuing overrides")
    study = run_study(
        bars,
        votes,
        config=settings.hierarchy,
        rules=settings.rules,
        inputs=settings.indicators,
        override_limit=settings.report.get("override_limit", 200),
        sweep_grid=grid,
        sweep_options=options,
        metric=metric,
        title=settings.title,
        verdict=settings.verdict,
    )
    _say(f"computed in {time.perf_counter() - started:.1f} s")
    return study


def _output(given: str | None, settings, configured: str | None, default: str | None):
    """Where an output goes: a path on the command line as given (from the current folder), a
    path from the settings file from the file's folder, like every input path in it."""
    if given:
        return Path(given)
    if configured:
        return settings.resolve(configured)
    return Path(default) if default else None


def _write(study, settings, args, default: str) -> None:
    from qt_backtest.report import write_report

    out = _output(args.out, settings, settings.report.get("out"), default)
    save = _output(args.save, settings, settings.report.get("save"), None)
    if save:
        study.save(save)
        print(f"study saved in {Path(save).resolve()}")
    pairs = settings.report.get("heatmaps")
    path = write_report(
        study,
        out,
        max_trades=int(settings.report.get("max_trades", 50)),
        heatmaps=[tuple(pair) for pair in pairs] if pairs else None,
    )
    print(f"report written to {path.resolve()}")


def command_run(args: argparse.Namespace) -> int:
    from qt_backtest.settings import load_settings

    settings = load_settings(args.settings)
    study = _study(settings, with_sweep=False)
    for row in study.provenance.itertuples():
        if hasattr(row, "window_start"):
            print(
                f"{row.symbol}: evaluation window {row.window_start} to {row.window_end} "
                f"({row.window_bars:,} bars, {row.warmup_bars:,} warm-up bars before)"
            )
    table = study.table[["total_return", "sharpe", "max_drawdown", "ruined", "trades"]]
    print(table.to_string(float_format=lambda v: f"{v:,.3f}"))
    _print_verdicts(study)
    _write(study, settings, args, "reports/run.html")
    return EXIT_OK


def _print_verdicts(study) -> None:
    """The verdict table: per symbol and transition, the Sharpe difference with its interval,
    the p-values and the verdict, then one sentence each."""
    tests = study.verdict_tests
    if tests.empty:
        return
    confidence = float(study.verdict_settings.get("confidence", 0.9))
    shown = pd.DataFrame(
        {
            "symbol": tests["symbol"],
            "transition": [
                f"{a} vs {b}" for a, b in zip(tests["later"], tests["earlier"], strict=True)
            ],
            "sharpe_diff": tests["sharpe_difference"].map(lambda v: f"{v:+.2f}"),
            f"interval_{confidence:.0%}": [
                f"[{low:+.2f}, {high:+.2f}]"
                for low, high in zip(tests["low"], tests["high"], strict=True)
            ],
            "hac_p": tests["p_value"].map(_p_value_text),
            "bootstrap_p": tests["bootstrap_p_value"].map(_p_value_text),
            "iid_p": tests["iid_p_value"].map(_p_value_text),
            "verdict": tests["verdict"],
        }
    )
    print(f"verdicts ({study.verdict_settings.get('period', '1D')} returns, paired):")
    print(shown.to_string(index=False))
    for sentence in tests["sentence"]:
        print(f"  {sentence}")


def _p_value_text(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def command_sweep(args: argparse.Namespace) -> int:
    from qt_backtest.settings import load_settings

    settings = load_settings(args.settings)
    study = _study(settings, with_sweep=True)
    results = _output(args.results, settings, settings.sweep.get("out"), "reports/sweep.csv")
    results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(results, lambda temporary: study.sweep.frame.to_csv(temporary, index=False))
    print(f"sweep results ({len(study.sweep.frame):,} rows) written to {results.resolve()}")
    print(study.sweep.overfitting.set_index("symbol").T.to_string())
    superiority = study.sweep.superiority
    if not superiority.empty and "spa_consistent" in superiority:
        print("does any combination beat the benchmark in mean daily return beyond chance?")
        columns = ["symbol", "benchmark", "spa_consistent", "reality_check", "better", "distinct"]
        print(superiority.dropna(subset=["spa_consistent"])[columns].to_string(index=False))
    _write(study, settings, args, "reports/sweep.html")
    return EXIT_OK


def command_report(args: argparse.Namespace) -> int:
    from qt_backtest.report import load_study, write_report

    study = load_study(args.study, trust_html=args.trust_html)
    path = write_report(study, args.out, max_trades=args.max_trades)
    print(f"report written to {path.resolve()}")
    return EXIT_OK


def command_compare(args: argparse.Namespace) -> int:
    from qt_backtest.report import load_study
    from qt_backtest.report.side_by_side import (
        SIDE_BY_SIDE_METRICS,
        settings_difference,
        side_by_side,
    )

    first, second = load_study(args.first), load_study(args.second)
    metrics = args.metrics.split(",") if args.metrics else list(SIDE_BY_SIDE_METRICS)
    print(f"first: {args.first} ({first.title}); second: {args.second} ({second.title})")
    differences = settings_difference(first, second)
    if len(differences):
        print("settings that differ:")
        print(differences.to_string(index=False))
    else:
        print("settings: the same")
    table = side_by_side(first, second, metrics)
    print(table.to_string(float_format=lambda v: f"{v:,.3f}"))
    return EXIT_OK


def command_replay_log(args: argparse.Namespace) -> int:
    from qt_backtest.hierarchy import HierarchyConfig
    from qt_backtest.hierarchy.livelog import parse_live_log, replay_log

    path = Path(args.journal)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such journal")
    config = HierarchyConfig()
    if args.settings:
        from qt_backtest.settings import load_settings

        config = load_settings(args.settings).hierarchy
    parsed = parse_live_log(path, year=args.year)
    if parsed.records.empty:
        raise UsageError(
            f"{path}: no decision of the live engine found ({parsed.skipped:,} lines skipped)"
        )
    diff = replay_log(parsed, config)
    print(
        f"{len(parsed.records):,} decision records, {parsed.skipped:,} lines skipped, "
        f"{diff.unreplayable:,} without logged votes"
    )
    for example in parsed.skipped_examples[:3]:
        shown = example if len(example) <= 120 else example[:117] + "..."
        print(f"  skipped: {shown}")
    print(diff.summary.to_string())
    if args.mismatches:
        atomic_write(
            args.mismatches, lambda temporary: diff.mismatches.to_csv(temporary, index=False)
        )
        print(f"{len(diff.mismatches):,} mismatches written to {Path(args.mismatches).resolve()}")
    if args.out:
        from qt_backtest.report.build import write_log_report

        written = write_log_report(parsed, diff, args.out, source=path.name)
        print(f"diff report written to {written.resolve()}")
    return EXIT_OK


def command_data_inspect(args: argparse.Namespace) -> int:
    from qt_backtest.data import gap_report, load_ohlcv
    from qt_backtest.report.format import price, price_decimals

    for name in args.files:
        frame = load_ohlcv(name)
        gaps = gap_report(frame)
        print(
            f"{name}: {frame.attrs.get('symbol', '?')}, {len(frame):,} {frame.attrs['interval']} "
            f"bars, {frame.index[0]:%Y-%m-%d %H:%M} .. {frame.index[-1]:%Y-%m-%d %H:%M} UTC; "
            f"{gaps}"
        )
        close = frame["close"]
        decimals = price_decimals(close.to_numpy())
        print(
            f"  close {price(close.iloc[0], decimals)} -> {price(close.iloc[-1], decimals)} "
            f"(min {price(close.min(), decimals)}, max {price(close.max(), decimals)}; "
            f"{decimals} decimals); zero-volume bars {int((frame['volume'] == 0).sum()):,}"
        )
    return EXIT_OK


def command_data_validate(args: argparse.Namespace) -> int:
    from qt_backtest.data import load_ohlcv

    for name in args.files:
        frame = load_ohlcv(name, gaps="raise" if args.strict else "report")
        print(f"{name}: valid, {len(frame):,} bars")
    return EXIT_OK


def command_data_resample(args: argparse.Namespace) -> int:
    from qt_backtest.data import load_ohlcv, resample_ohlcv

    frame = load_ohlcv(args.file)
    coarse = resample_ohlcv(frame, args.to, complete=not args.partial)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = coarse.rename_axis("timestamp").reset_index()
    if out.name.endswith((".parquet", ".pq")):
        atomic_write(out, lambda temporary: table.to_parquet(temporary, index=False))
    else:
        atomic_write(out, lambda temporary: table.to_csv(temporary, index=False))
    print(
        f"{len(frame):,} {frame.attrs['interval']} bars -> {len(coarse):,} {args.to} bars in {out}"
    )
    return EXIT_OK


def command_monitor(args: argparse.Namespace) -> int:
    from qt_backtest.monitor.command import command_monitor as monitor

    return monitor(args)


def _add_monitor(commands: Any) -> None:
    monitor = commands.add_parser(
        "monitor",
        help="anytime-valid verdicts on a live rollout stage, from its journal",
        description="Read the live engine's journal (only the lines added since the last run), "
        "update the rates' and the overrides' confidence sequences, print the verdicts "
        "(promote, roll back, continue) and write an HTML page. The settings' [monitor] table "
        "names the journal and the stage; [data] gives the bars the overrides are valued on.",
    )
    monitor.add_argument("settings", help="TOML settings file with a [monitor] table")
    monitor.add_argument(
        "--out", help="page path (default: [monitor] out, or reports/monitor.html)"
    )
    monitor.add_argument(
        "--state", help="state file (default: [monitor] state, or beside SETTINGS)"
    )
    monitor.add_argument("--follow", action="store_true", help="keep reading as the journal grows")
    monitor.add_argument(
        "--poll", type=float, default=1.0, help="seconds between reads with --follow"
    )
    monitor.add_argument(
        "--history",
        metavar="START",
        nargs="?",
        const="",
        help="monitor past data as a rollout starting at START (default: [monitor] start) would "
        "have seen it (needs [predictions])",
    )
    monitor.add_argument("--end", help="last day of --history (default: the end of the data)")
    monitor.set_defaults(handler=command_monitor)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qt-backtest",
        description=(
            "Backtest and tune a three-layer trading decision hierarchy (ensemble vote, "
            "Meta-V2 policy, Arbiter) on history. Settings files are TOML; everything left out "
            "takes the live engine's defaults (see the settings module for the format)."
        ),
        epilog="Exit codes: 0 success, 1 bad input, 2 bad usage, 3 unexpected failure.",
    )
    parser.add_argument("--version", action="version", version=f"qt-backtest {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="replay the hierarchy, backtest the rollout stages, write the HTML report",
        description="Data and votes (a predictions file, or models trained walk-forward) -> "
        "replay of ensemble, meta and meta_arbiter -> vectorbt backtests -> HTML report.",
    )
    run.add_argument("settings", help="TOML settings file")
    run.add_argument("--out", help="report path (default: [report] out, or reports/run.html)")
    run.add_argument("--save", help="also save the study's results in this folder")
    run.set_defaults(handler=command_run)

    sweep = commands.add_parser(
        "sweep",
        help="sweep thresholds from the settings' [sweep.grid], with overfitting controls",
        description="Everything `run` does, plus every combination of [sweep.grid] through the "
        "fused sweep kernel; writes the tidy results (CSV) and the report with heatmaps, PBO, "
        "the deflated Sharpe ratio, plateau and walk-forward selection.",
    )
    sweep.add_argument("settings", help="TOML settings file with a [sweep.grid] table")
    sweep.add_argument("--out", help="report path (default: reports/sweep.html)")
    sweep.add_argument("--results", help="CSV of every combination (default: reports/sweep.csv)")
    sweep.add_argument("--save", help="also save the study's results in this folder")
    sweep.set_defaults(handler=command_sweep)

    report = commands.add_parser(
        "report",
        help="render a saved study (run/sweep --save) as an HTML report",
        description="Render the results saved by `run --save` or `sweep --save` again.",
    )
    report.add_argument("study", help="folder written by --save")
    report.add_argument("--out", default="reports/report.html", help="report path")
    report.add_argument("--max-trades", type=int, default=50, help="trades listed per symbol")
    report.add_argument(
        "--trust-html",
        action="store_true",
        help="show the study's own HTML sections as HTML (only for a study you wrote)",
    )
    report.set_defaults(handler=command_report)

    compare = commands.add_parser(
        "compare",
        help="two saved studies side by side",
        description="Metrics of two saved studies per (symbol, run), and the settings that differ.",
    )
    compare.add_argument("first", help="folder written by --save")
    compare.add_argument("second", help="folder written by --save")
    compare.add_argument(
        "--metrics", help="comma-separated metrics (default: total_return, sharpe, ...)"
    )
    compare.set_defaults(handler=command_compare)

    log = commands.add_parser(
        "replay-log",
        help="replay a live journal's votes and diff every layer against what was logged",
        description="Parse the live engine's journal (journald or plain logging lines), "
        "recompute every decision from the logged votes and report where they differ.",
    )
    log.add_argument("journal", help="journal text file")
    log.add_argument("--settings", help="TOML settings whose [hierarchy] to replay with")
    log.add_argument("--year", type=int, help="year of journald time stamps (they have none)")
    log.add_argument("--mismatches", help="write the mismatching records to this CSV")
    log.add_argument("--out", help="write an HTML diff report here")
    log.set_defaults(handler=command_replay_log)

    _add_monitor(commands)

    data = commands.add_parser(
        "data", help="inspect, validate or resample OHLCV files", description="OHLCV files."
    )
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    inspect = actions.add_parser("inspect", help="bars, range, interval, gaps and prices")
    inspect.add_argument("files", nargs="+", help="OHLCV files (CSV, CSV.GZ, parquet, zip)")
    inspect.set_defaults(handler=command_data_inspect)
    validate = actions.add_parser(
        "validate", help="exit 0 if every file is a clean series, else 1 with the problem"
    )
    validate.add_argument("files", nargs="+")
    validate.add_argument("--strict", action="store_true", help="gaps are errors too")
    validate.set_defaults(handler=command_data_validate)
    resample = actions.add_parser("resample", help="aggregate bars into a coarser interval")
    resample.add_argument("file")
    resample.add_argument("--to", required=True, help="target interval, e.g. 4h or 1d")
    resample.add_argument("--out", required=True, help="CSV or parquet to write")
    resample.add_argument(
        "--partial", action="store_true", help="keep incomplete bins (default: complete only)"
    )
    resample.set_defaults(handler=command_data_resample)
    return parser


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", CoverageWarning)
            warnings.showwarning = _show_note
            return args.handler(args)
    except (
        QtBacktestError,  # bad data, settings, configuration or usage
        OSError,  # a file that cannot be read or written: the message names it
        ValueError,
        KeyError,
    ) as error:
        if args.debug:
            raise
        print(f"qt-backtest: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("qt-backtest: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(
            f"qt-backtest: unexpected failure: {type(error).__name__}: {_one_line(error)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
