"""TOML settings files for the command line: data, predictions, hierarchy, indicators, rules,
verdict, report, sweep and monitor, with the documented defaults (docs/) for everything left out.

Example::

    title = "BTC and ETH, live thresholds"

    [data]
    samples = ["BTCUSDT-1h", "ETHUSDT-1h"]   # bundled sample names, and/or
    files = ["/data/SOLUSDT-1h.csv.gz"]       # paths of OHLCV files
    start = "2024-01-01"                      # optional window (UTC)

    [predictions]
    file = "data/sample-predictions.parquet"  # or: train = ["xgb", "lgbm"]
    cache_dir = ".cache/predictions"          # trained votes, relative to this file
    # workers = 2                             # with train: walk-forward folds trained at once
    [predictions.walk_forward]                # bar counts or durations ("365D", "30D")
    train_window = "365D"
    step = "30D"

    [hierarchy]
    mode = "meta_arbiter"
    [hierarchy.arbiter]
    arbiter_threshold = 0.75

    [rules]
    fee = 0.0004

    [verdict]                                 # how the layers' verdicts are reached
    confidence = 0.90
    draws = 2000
    block_length = "auto"                     # or a mean block length in periods
    seed = 0
    period = "1D"                             # returns compared per day

    [sweep.grid]
    "arbiter.arbiter_threshold" = [0.6, 0.7, 0.8]
    "rules.max_hold_bars" = ["none", 5]       # TOML has no null: "none" stands for None

    [monitor]                                 # qt-backtest monitor: a live stage's verdicts
    stage = "meta_arbiter"
    journal = "/var/log/engine/journal.log"   # the live engine's journal
    year = 2026                               # for lines with journald's prefix only
    state = "monitor-state.json"              # beside this file by default
    out = "../reports/monitor.html"
    confidence = 0.95
    outcome_bound = 0.05
    [monitor.targets]
    escalation = [0.20, 0.30]

Every unknown key is an error naming the file, the table and the keys it accepts.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from qt_backtest.backtest import PositionRules
from qt_backtest.data.gaps import GAP_POLICIES
from qt_backtest.errors import SettingsError
from qt_backtest.hierarchy import HierarchyConfig
from qt_backtest.hierarchy.config import SECTIONS
from qt_backtest.hierarchy.rates import RateTargets
from qt_backtest.indicators import ArbiterInputConfig
from qt_backtest.inference.verdict import VerdictSettings
from qt_backtest.monitor.config import MonitorConfig
from qt_backtest.parameters import close_matches, declared_fields

TABLES = {
    "": {
        "title",
        "data",
        "predictions",
        "hierarchy",
        "indicators",
        "rules",
        "report",
        "sweep",
        "verdict",
        "monitor",
    },
    "data": {"samples", "files", "start", "end", "gaps"},
    "predictions": {"file", "train", "walk_forward", "cache_dir", "workers"},
    "predictions.walk_forward": {
        "step",
        "train_window",
        "min_train",
        "purge",
        "embargo",
        "horizon",
    },
    "report": {"out", "save", "override_limit", "max_trades", "heatmaps"},
    "sweep": {
        "grid",
        "modes",
        "blocks",
        "chunk_size",
        "metric",
        "cache_dir",
        "executor",
        "address",
        "sample",
        "seed",
        "train_blocks",
        "max_splits",
        "out",
    },
}
#: Keys of ``[monitor]`` that are not fields of MonitorConfig: where it reads and writes.
MONITOR_FILES = ("journal", "state", "out", "year", "start", "end")
HIERARCHY_SECTIONS = SECTIONS
#: Walk-forward spans of ``[predictions] train`` (hourly bars: monthly retraining on a year).
WALK_FORWARD_DEFAULTS = {
    "step": "30D",
    "train_window": "365D",
    "min_train": "365D",
    "purge": 5,
    "horizon": 5,
}


def none_words(value: Any) -> Any:
    """TOML has no null: the words "none" and "off" stand for None."""
    if isinstance(value, str) and value.strip().lower() in ("none", "off"):
        return None
    return value


@dataclass
class Settings:
    """A settings file, read and validated."""

    path: Path | None = None
    title: str = "qt_backtest performance report"
    samples: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    start: str | None = None
    end: str | None = None
    gaps: str = "report"
    predictions: str | None = None
    train: list[str] = field(default_factory=list)
    #: walk-forward spans of ``train``: bar counts or durations (see WalkForward.from_spans)
    walk_forward: dict[str, Any] = field(default_factory=dict)
    cache_dir: str = ".cache/predictions"
    #: walk-forward folds of ``train`` trained at once (I-WF-2)
    workers: int = 1
    hierarchy: HierarchyConfig = field(default_factory=HierarchyConfig)
    indicators: ArbiterInputConfig = field(default_factory=ArbiterInputConfig)
    rules: PositionRules = field(default_factory=PositionRules)
    report: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)
    verdict: VerdictSettings = field(default_factory=VerdictSettings)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    #: ``[monitor]``'s files and dates: journal, state, out, year, start, end
    monitor_files: dict[str, Any] = field(default_factory=dict)

    def resolve(self, name: str) -> Path:
        """A path from the file, relative to the file's folder."""
        path = Path(name).expanduser()
        if not path.is_absolute() and self.path is not None:
            path = self.path.parent / path
        return path


def _check_keys(where: str, table: dict[str, Any], allowed: set[str], source: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        place = f"[{where}]" if where else "the top level"
        hints = sorted({m for key in unknown for m in close_matches(key, allowed)})
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise SettingsError(
            f"{source}: unknown key(s) {', '.join(unknown)} in {place}{hint}; "
            f"expected {', '.join(sorted(allowed))}"
        )


def _build(kind: type, values: dict[str, Any], where: str, source: str) -> Any:
    """An instance of a configuration class from a table; its declarations say which fields
    take None (written "none" or "off")."""
    _check_keys(where, values, {f.name for f in dataclasses.fields(kind) if f.init}, source)
    nullable = {field.name for field, spec in declared_fields(kind) if spec.nullable}
    values = {key: none_words(v) if key in nullable else v for key, v in values.items()}
    try:
        return kind(**values)
    except (TypeError, ValueError) as error:
        raise SettingsError(f"{source}: [{where}] {error}") from None


def _strings(value: Any, name: str, source: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        raise SettingsError(f"{source}: {name} must be a string or a list of strings")
    return list(value)


def parse_settings(document: dict[str, Any], source: str = "settings") -> Settings:
    """Settings from a parsed TOML document."""
    _check_keys("", document, TABLES[""], source)
    settings = Settings()
    if "title" in document:
        settings.title = str(document["title"])
    data = document.get("data", {})
    _check_keys("data", data, TABLES["data"], source)
    settings.samples = _strings(data.get("samples", []), "data.samples", source)
    settings.files = _strings(data.get("files", []), "data.files", source)
    settings.start = _date(data.get("start"), "data.start", source)
    settings.end = _date(data.get("end"), "data.end", source)
    if (
        settings.start
        and settings.end
        and pd.Timestamp(settings.start) > pd.Timestamp(settings.end)
    ):
        raise SettingsError(f"{source}: data.start {settings.start} is after data.end")
    settings.gaps = data.get("gaps", "report")
    if settings.gaps not in GAP_POLICIES:
        raise SettingsError(
            f"{source}: data.gaps must be one of {', '.join(GAP_POLICIES)}, got {settings.gaps!r}"
        )
    predictions = document.get("predictions", {})
    _check_keys("predictions", predictions, TABLES["predictions"], source)
    settings.predictions = predictions.get("file")
    settings.train = _strings(predictions.get("train", []), "predictions.train", source)
    if settings.predictions and settings.train:
        raise SettingsError(f"{source}: [predictions] takes a file or train, not both")
    _check_train(settings, predictions, source)
    hierarchy = dict(document.get("hierarchy", {}))
    sections = {}
    for name, kind in HIERARCHY_SECTIONS.items():
        if name in hierarchy:
            sections[name] = _build(kind, hierarchy.pop(name), f"hierarchy.{name}", source)
    settings.hierarchy = _build(HierarchyConfig, {**hierarchy, **sections}, "hierarchy", source)
    settings.indicators = _build(
        ArbiterInputConfig, document.get("indicators", {}), "indicators", source
    )
    settings.rules = _build(PositionRules, document.get("rules", {}), "rules", source)
    verdict = dict(document.get("verdict", {}))
    if str(verdict.get("block_length", "")).strip().lower() == "auto":
        verdict["block_length"] = None
    settings.verdict = _build(VerdictSettings, verdict, "verdict", source)
    settings.report = dict(document.get("report", {}))
    _check_keys("report", settings.report, TABLES["report"], source)
    _check_report(settings.report, source)
    settings.sweep = dict(document.get("sweep", {}))
    _check_keys("sweep", settings.sweep, TABLES["sweep"], source)
    grid = settings.sweep.get("grid", {})
    if not isinstance(grid, dict):
        raise SettingsError(f"{source}: [sweep.grid] must map parameter names to value lists")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SettingsError(f"{source}: sweep.grid.{name} must be a non-empty list of values")
        grid[name] = [none_words(value) for value in values]
    _check_grid(settings, grid, source)
    _check_sweep(settings.sweep, source)
    _parse_monitor(settings, document.get("monitor", {}), source)
    return settings


def _parse_monitor(settings: Settings, table: Any, source: str) -> None:
    """``[monitor]``: MonitorConfig's fields, its files and dates, and ``[monitor.targets]``."""
    if not isinstance(table, dict):
        raise SettingsError(f"{source}: [monitor] must be a table")
    fields = {f.name for f in dataclasses.fields(MonitorConfig) if f.init}
    _check_keys("monitor", table, fields | set(MONITOR_FILES), source)
    values = {key: value for key, value in table.items() if key not in MONITOR_FILES}
    files = {key: value for key, value in table.items() if key in MONITOR_FILES}
    if "targets" in values:
        targets = values["targets"]
        if not isinstance(targets, dict):
            raise SettingsError(f"{source}: [monitor.targets] must be a table")
        bands = {k: tuple(v) if isinstance(v, list) else v for k, v in targets.items()}
        values["targets"] = _build(RateTargets, bands, "monitor.targets", source)
    settings.monitor = _build(MonitorConfig, values, "monitor", source)
    for name in ("journal", "state", "out"):
        if name in files and not (isinstance(files[name], str) and files[name]):
            raise SettingsError(f"{source}: monitor.{name} must be a path")
    if "year" in files:
        _whole(files["year"], "monitor.year", source, 1970)
    for name in ("start", "end"):
        if name in files:
            files[name] = _date(files[name], f"monitor.{name}", source)
    settings.monitor_files = files


def _date(value: Any, name: str, source: str) -> str | None:
    """A date or timestamp (UTC) as text; anything else (a number, say) is an error."""
    if value is None:
        return None
    if isinstance(value, _dt.datetime | _dt.date):
        value = value.isoformat()
    if not isinstance(value, str):
        raise SettingsError(f'{source}: {name} must be a date such as "2024-01-01", got {value!r}')
    try:
        pd.Timestamp(value)
    except ValueError:
        raise SettingsError(f"{source}: {name} is not a date: {value!r}") from None
    return value


def _whole(value: Any, name: str, source: str, low: int, nullable: bool = False) -> None:
    if nullable and none_words(value) is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SettingsError(f"{source}: {name} must be an integer >= {low}, got {value!r}")


def _check_report(report: dict[str, Any], source: str) -> None:
    if "override_limit" in report:
        _whole(report["override_limit"], "report.override_limit", source, 0, nullable=True)
        report["override_limit"] = none_words(report["override_limit"])
    if "max_trades" in report:
        _whole(report["max_trades"], "report.max_trades", source, 0)
    for name in ("out", "save"):
        if name in report and not (isinstance(report[name], str) and report[name]):
            raise SettingsError(f"{source}: report.{name} must be a path")
    pairs = report.get("heatmaps")
    if pairs is not None and not (
        isinstance(pairs, list)
        and all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
            for pair in pairs
        )
    ):
        raise SettingsError(
            f"{source}: report.heatmaps must be a list of [x, y] parameter name pairs, "
            f"got {pairs!r}"
        )


def _check_sweep(sweep: dict[str, Any], source: str) -> None:
    from qt_backtest.hierarchy.config import MODES
    from qt_backtest.sweep.run import METRICS, RATES

    if "blocks" in sweep:
        _whole(sweep["blocks"], "sweep.blocks", source, 2)
        if sweep["blocks"] % 2:
            raise SettingsError(f"{source}: sweep.blocks must be even (CSCV halves them)")
    for name, low in (
        ("chunk_size", 1),
        ("sample", 1),
        ("seed", 0),
        ("train_blocks", 1),
        ("max_splits", 2),
    ):
        if name in sweep:
            _whole(sweep[name], f"sweep.{name}", source, low)
    metric = sweep.get("metric", "sharpe")
    if metric not in (*METRICS, *RATES):
        raise SettingsError(
            f"{source}: sweep.metric {metric!r} is not a sweep result column; use one of "
            f"{', '.join((*METRICS, *RATES))}"
        )
    modes = sweep.get("modes")
    if modes is not None and not (
        isinstance(modes, list) and modes and all(mode in MODES for mode in modes)
    ):
        raise SettingsError(f"{source}: sweep.modes must be a list among {', '.join(MODES)}")
    if sweep.get("executor", "local") not in ("local", "dask"):
        raise SettingsError(f'{source}: sweep.executor must be "local" or "dask"')
    for name in ("out", "cache_dir", "address"):
        if name in sweep and not (isinstance(sweep[name], str) and sweep[name]):
            raise SettingsError(f"{source}: sweep.{name} must be a non-empty string")


def _check_train(settings: Settings, predictions: dict[str, Any], source: str) -> None:
    """Model slots and walk-forward spans, checked before any data is read."""
    from qt_backtest.signals import MODEL_SLOTS, WalkForward
    from qt_backtest.signals.models import NEURAL_SLOTS

    slots = (*MODEL_SLOTS, *NEURAL_SLOTS)
    unknown = [model for model in settings.train if model not in slots]
    if unknown:
        raise SettingsError(
            f"{source}: predictions.train names unknown model slot(s) {unknown}; slots are "
            f"{list(slots)}"
        )
    outside = [model for model in settings.train if model not in settings.hierarchy.models]
    if outside:
        raise SettingsError(
            f"{source}: predictions.train trains {outside}, which the hierarchy's models "
            f"{list(settings.hierarchy.models)} do not include"
        )
    spans = predictions.get("walk_forward", {})
    if not isinstance(spans, dict):
        raise SettingsError(f"{source}: [predictions.walk_forward] must be a table")
    _check_keys("predictions.walk_forward", spans, TABLES["predictions.walk_forward"], source)
    spans = {key: none_words(value) for key, value in spans.items()}
    try:
        # checked on a 1h calendar now; the data's own interval converts durations later
        WalkForward.from_spans("1h", **{**WALK_FORWARD_DEFAULTS, **spans})
    except (TypeError, ValueError) as error:
        raise SettingsError(f"{source}: [predictions.walk_forward] {error}") from None
    settings.walk_forward = spans
    cache_dir = predictions.get("cache_dir", settings.cache_dir)
    if not isinstance(cache_dir, str) or not cache_dir:
        raise SettingsError(f"{source}: predictions.cache_dir must be a path")
    settings.cache_dir = cache_dir
    workers = predictions.get("workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SettingsError(
            f"{source}: predictions.workers (walk-forward folds trained at once) must be an "
            f"integer >= 1, got {workers!r}"
        )
    if "workers" in predictions and not settings.train:
        raise SettingsError(f"{source}: predictions.workers applies only with train = [...]")
    settings.workers = workers


def _check_grid(settings: Settings, grid: dict[str, list[Any]], source: str) -> None:
    """Every grid parameter name, and every value on its own, checked before any work."""
    from qt_backtest.sweep.grid import apply_parameters

    for name, values in grid.items():
        for value in values:
            try:
                apply_parameters(settings.hierarchy, settings.rules, {name: value})
            except (TypeError, ValueError) as error:
                raise SettingsError(f"{source}: sweep.grid.{name} = {value!r}: {error}") from None


def load_settings(path: str | Path) -> Settings:
    """Read and validate a TOML settings file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such settings file")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path}: not valid TOML ({error})") from None
    settings = parse_settings(document, str(path))
    settings.path = path.resolve()
    return settings
