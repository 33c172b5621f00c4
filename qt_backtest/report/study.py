"""A study: everything a report shows, computed once and saved as plain files.

:func:`run_study` takes bars and model votes per symbol and produces a :class:`StudyResult`:
the mode comparison and equity curves, the rollout check, the decision-source and reason mix,
what every Arbiter override was worth, model reliability, the trades, and optionally a
threshold sweep with its overfitting controls. :meth:`StudyResult.save` writes it as a folder
of parquet files and one JSON file; :func:`load_study` reads it back (the ``report`` command
renders a saved study).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qt_backtest import __version__
from qt_backtest.atomic import atomic_write, atomic_write_text
from qt_backtest.backtest import PositionRules, compare_modes, override_values, rollout_check
from qt_backtest.backtest.window import CoverageWarning
from qt_backtest.data import gap_report
from qt_backtest.hierarchy import HierarchyConfig
from qt_backtest.indicators import ArbiterInputConfig, arbiter_inputs
from qt_backtest.inference.verdict import VerdictSettings, layer_verdicts
from qt_backtest.report.format import escape, price_decimals
from qt_backtest.signals.diagnostics import vote_reliability, vote_skill
from qt_backtest.signals.labels import make_labels
from qt_backtest.sweep.breakeven import break_even_fees
from qt_backtest.sweep.run import check_sweep_rules, unsupported_rules

FRAMES = ("provenance", "table", "rollout", "mix", "overrides", "reliability", "trades")
#: frames that studies saved by earlier versions lack
OPTIONAL_FRAMES = (
    "skill",
    "verdict_tests",
    "verdict_effects",
    "verdict_track_record",
    "verdict_power",
    "verdict_set",
    "verdict_regimes",
    "verdict_break_even",
)
SWEEP_FRAMES = ("frame", "overfitting", "walk_forward", "plateau", "reference", "superiority")


@dataclass
class SweepSummary:
    """A sweep as a report shows it.

    Attributes
    ----------
    frame : DataFrame
        The sweep's tidy results (:attr:`SweepResult.frame`).
    parameters : list of str
        The grid's parameters.
    metric : str
        What the overfitting controls rank by.
    overfitting : DataFrame
        One row per symbol: :meth:`OverfittingReport.summary`, and ``simulated``, the
        distinct order streams the sweep simulated (S-DUP-1).
    walk_forward : DataFrame
        Walk-forward steps per symbol (``symbol`` column).
    plateau : DataFrame
        The ten best plateaus per symbol, with their parameters.
    reference : DataFrame
        Buy-and-hold per symbol on the same bars (:attr:`SweepResult.reference`).
    superiority : DataFrame
        Per symbol and benchmark (ensemble-only, buy-and-hold): SPA and Reality Check
        p-values and the combinations StepM declares better (:meth:`SweepResult.superiority`).
    """

    frame: pd.DataFrame
    parameters: list[str]
    metric: str
    overfitting: pd.DataFrame
    walk_forward: pd.DataFrame
    plateau: pd.DataFrame
    reference: pd.DataFrame = field(default_factory=pd.DataFrame)
    superiority: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class StudyResult:
    """Everything a performance report shows (see the module docstring)."""

    title: str
    created: str
    version: str
    config: dict[str, Any]
    rules: dict[str, Any]
    inputs: dict[str, Any]
    provenance: pd.DataFrame
    table: pd.DataFrame
    equity: dict[str, pd.DataFrame]
    rollout: pd.DataFrame
    mix: pd.DataFrame
    overrides: pd.DataFrame
    reliability: pd.DataFrame
    trades: pd.DataFrame
    sweep: SweepSummary | None = None
    #: per (symbol, model): hit rate, balanced accuracy, recall per class and the baselines
    #: that need no skill (see :func:`qt_backtest.signals.diagnostics.vote_skill`)
    skill: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    #: the verdicts (:class:`qt_backtest.inference.verdict.Verdicts`) as flat frames: tests
    #: per (symbol, later, earlier), effects per metric, track records per (symbol, run),
    #: rollout power per drop, and the Model Confidence Set of the stages; empty if not run
    verdict_tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    verdict_effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    verdict_track_record: pd.DataFrame = field(default_factory=pd.DataFrame)
    verdict_power: pd.DataFrame = field(default_factory=pd.DataFrame)
    verdict_set: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: each transition's value per market regime, and the fee per side that erases it
    verdict_regimes: pd.DataFrame = field(default_factory=pd.DataFrame)
    verdict_break_even: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the :class:`~qt_backtest.inference.verdict.VerdictSettings` the verdicts used
    verdict_settings: dict[str, Any] = field(default_factory=dict)
    #: sections written by the caller in Python (``id``, ``title``, ``blocks``), shown first.
    #: Their blocks are trusted HTML, inserted as they are (titles and ids are escaped); a
    #: study read back from disk has them as text unless ``load_study(trust_html=True)``.
    extra_sections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def symbols(self) -> list[str]:
        return list(self.equity)

    def save(self, folder: str | Path) -> Path:
        """Write the study to ``folder`` (created): ``study.json`` and parquet files."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "title": self.title,
            "created": self.created,
            "version": self.version,
            "config": self.config,
            "rules": self.rules,
            "inputs": self.inputs,
            "notes": self.notes,
            "extra_sections": self.extra_sections,
            "verdict_settings": self.verdict_settings,
            "symbols": self.symbols,
            "sweep": None,
        }
        for name in (*FRAMES, *OPTIONAL_FRAMES):
            _write(getattr(self, name), folder / f"{name}.parquet")
        for position, equity in enumerate(self.equity.values()):
            _write(equity, folder / f"equity-{position}.parquet")
        if self.sweep is not None:
            meta["sweep"] = {"parameters": self.sweep.parameters, "metric": self.sweep.metric}
            for name in SWEEP_FRAMES:
                _write(getattr(self.sweep, name), folder / f"sweep-{name}.parquet")
        atomic_write_text(folder / "study.json", json.dumps(meta, indent=2, default=str))
        return folder


def _write(frame: pd.DataFrame, path: Path) -> None:
    frame = frame.copy()
    frame.columns = [str(column) for column in frame.columns]
    atomic_write(path, frame.to_parquet)


def load_study(folder: str | Path, *, trust_html: bool = False) -> StudyResult:
    """Read a study written by :meth:`StudyResult.save`.

    A saved study is data, not code: anyone who can edit its files can put text in every
    field. Every field is escaped when rendered; the HTML blocks of ``extra_sections`` are
    kept as HTML only with ``trust_html=True`` (a study you wrote yourself), and shown as text
    otherwise.
    """
    folder = Path(folder)
    path = folder / "study.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no saved study (no study.json)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a valid study file ({error})") from None
    frames = {name: pd.read_parquet(folder / f"{name}.parquet") for name in FRAMES}
    for name in OPTIONAL_FRAMES:
        if (folder / f"{name}.parquet").is_file():
            frames[name] = pd.read_parquet(folder / f"{name}.parquet")
    equity = {
        symbol: pd.read_parquet(folder / f"equity-{position}.parquet")
        for position, symbol in enumerate(meta["symbols"])
    }
    sweep = None
    if meta.get("sweep"):
        # studies saved before a frame existed lack its file: it is left empty
        parts = {
            name: pd.read_parquet(folder / f"sweep-{name}.parquet")
            for name in SWEEP_FRAMES
            if (folder / f"sweep-{name}.parquet").is_file()
        }
        sweep = SweepSummary(
            parameters=list(meta["sweep"]["parameters"]), metric=meta["sweep"]["metric"], **parts
        )
    return StudyResult(
        title=meta["title"],
        created=meta["created"],
        version=meta["version"],
        config=meta["config"],
        rules=meta["rules"],
        inputs=meta["inputs"],
        equity=equity,
        sweep=sweep,
        notes=list(meta.get("notes", [])),
        verdict_settings=dict(meta.get("verdict_settings") or {}),
        extra_sections=_sections(meta.get("extra_sections", []), trust_html),
        **frames,
    )


def _sections(sections: Any, trust_html: bool) -> list[dict[str, Any]]:
    """Extra sections read from a saved study: their blocks as text unless trusted."""
    if not isinstance(sections, list):
        raise ValueError("extra_sections of a saved study must be a list")
    checked = []
    for section in sections:
        if not (isinstance(section, dict) and {"id", "title", "blocks"} <= set(section)):
            raise ValueError("each extra section of a saved study needs id, title and blocks")
        blocks = [str(block) for block in section["blocks"]]
        if not trust_html:
            blocks = [f"<pre class='untrusted'>{escape(block)}</pre>" for block in blocks]
        checked.append({"id": str(section["id"]), "title": str(section["title"]), "blocks": blocks})
    return checked


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    hasher = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def provenance(bars: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Where each symbol's data came from: the file read (resolved path) and the SHA-256 of
    its bytes (``sha256_of`` "file"), or of the table's values when no file is behind it
    ("table"); range, bars, interval and gaps."""
    rows = []
    for symbol, frame in bars.items():
        source = frame.attrs.get("source")
        path = frame.attrs.get("path")  # the resolved path of the file read, if one was
        if path and Path(path).is_file():
            digest, hashed = file_digest(path), "file"
        else:
            # no file behind the frame (built in memory, a folder of files): its values
            digest = hashlib.sha256(
                pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()
            ).hexdigest()
            hashed = "table"
        gaps = gap_report(frame)
        rows.append(
            {
                "symbol": symbol,
                "source": str(source) if source else "(in memory)",
                "path": str(path) if path else "",
                "sha256": digest,
                "sha256_of": hashed,
                "first_bar": frame.index[0],
                "last_bar": frame.index[-1],
                "bars": len(frame),
                "interval": frame.attrs.get("interval", ""),
                "gaps": gaps.count if gaps is not None else 0,
                "missing_bars": gaps.missing_bars if gaps is not None else 0,
                "price_decimals": price_decimals(frame["close"].to_numpy()),
            }
        )
    return pd.DataFrame(rows)


def _mix(decisions: pd.DataFrame, symbol: str) -> list[dict[str, Any]]:
    voted = decisions[decisions["voters"] > 0]
    rows: list[dict[str, Any]] = []
    for kind, column in (
        ("decision source", "source"),
        ("Meta decision", "meta_decision"),
        ("Meta reason", "meta_reason"),
        ("Arbiter reason", "arbiter_reason"),
        ("gate outcome", "gate"),
    ):
        counts = voted[column].astype("string").fillna("(not run)").value_counts()
        if kind == "gate outcome":
            counts = voted[column].astype("string").dropna().value_counts()
        if kind == "Arbiter reason":
            # numbers in the neutral reason would make every score its own category
            counts = (
                voted[column]
                .astype("string")
                .dropna()
                .str.replace(r"score=-?[\d.]+", "score=…", regex=True)
                .value_counts()
            )
        total = counts.sum()
        rows.extend(
            {
                "symbol": symbol,
                "kind": kind,
                "category": category,
                "count": int(count),
                "share": count / total if total else np.nan,
            }
            for category, count in counts.items()
        )
    return rows


def _asdict(value: Any) -> dict[str, Any]:
    def plain(item: Any) -> Any:
        if dataclasses.is_dataclass(item):
            return {f.name: plain(getattr(item, f.name)) for f in dataclasses.fields(item)}
        if isinstance(item, (tuple, list)):
            return [plain(x) for x in item]
        return item

    return plain(value)


def run_study(
    bars: Mapping[str, pd.DataFrame],
    votes: Mapping[str, pd.DataFrame],
    *,
    config: HierarchyConfig | None = None,
    rules: PositionRules | None = None,
    inputs: ArbiterInputConfig | None = None,
    override_limit: int | None = 200,
    sweep_grid: Any = None,
    sweep_options: Mapping[str, Any] | None = None,
    metric: str = "sharpe",
    title: str = "qt_backtest performance report",
    notes: Sequence[str] = (),
    verdict: VerdictSettings | bool = True,
) -> StudyResult:
    """Replay, backtest and (optionally) sweep; collect what a report shows.

    Parameters
    ----------
    bars, votes : mapping of symbol to DataFrame
        Validated OHLCV bars and model votes indexed like them.
    config, rules, inputs : optional
        Hierarchy, position model and Arbiter-input configuration (defaults: the live ones).
    override_limit : int or None
        Arbiter overrides valued by counterfactual per symbol (evenly spread); None for all.
    sweep_grid : Grid or mapping, optional
        Also run :func:`qt_backtest.sweep.sweep` over this grid (``sweep_options`` are passed
        on, e.g. ``modes``, ``blocks``, ``cache_dir``, ``progress``).
    metric : str
        What the sweep's overfitting controls rank by.
    verdict : VerdictSettings or bool
        Settings of the verdicts on each layer (:func:`qt_backtest.inference.layer_verdicts`);
        True for the defaults, False to leave them out. Their break-even fees come from a
        sweep: under rules a sweep cannot run (see
        :func:`qt_backtest.sweep.run.unsupported_rules`) they are left out, and a note says
        so.
    """
    if verdict is True:
        verdict = VerdictSettings()
    elif verdict is not False and not isinstance(verdict, VerdictSettings):
        raise ValueError(f"verdict must be VerdictSettings, True or False, got {verdict!r}")
    config = config or HierarchyConfig()
    rules = rules or PositionRules()
    if sweep_grid is not None:
        check_sweep_rules(rules)  # before hours of work, not after
    inputs = inputs or ArbiterInputConfig()
    if set(bars) != set(votes):
        raise ValueError("bars and votes must name the same symbols")
    indicators = {symbol: arbiter_inputs(frame, inputs) for symbol, frame in bars.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CoverageWarning)
        comparison = compare_modes(bars, votes, indicators, rules, config)
    # said once: as the comparison's warning, and as a note on the report
    coverage_notes = [str(w.message) for w in caught if issubclass(w.category, CoverageWarning)]
    for caught_warning in caught:
        warnings.warn(caught_warning.message, caught_warning.category, stacklevel=2)
    overrides, reliability, trades, mix, skill = [], [], [], [], []
    rule_notes: list[str] = []
    for symbol in bars:
        # everything below is about the bars every run was scored on
        frame = comparison.bars[symbol]
        window_votes = votes[symbol].reindex(frame.index)
        decisions = comparison.decisions[symbol, "meta_arbiter"]
        values = override_values(
            frame,
            decisions,
            rules,
            votes=window_votes,
            min_trade_confidence=config.min_trade_confidence,
            limit=override_limit,
            actual=comparison.results[symbol, "meta_arbiter"],
        )
        if len(values):
            overrides.append(values.assign(symbol=symbol))
        labels = make_labels(frame["close"])
        for model in config.models:
            if f"{model}_action" in window_votes:
                table = vote_reliability(
                    window_votes[f"{model}_action"], window_votes[f"{model}_confidence"], labels
                )
                reliability.append(table.assign(symbol=symbol, model=model))
                skill.append(
                    {
                        "symbol": symbol,
                        "model": model,
                        **vote_skill(window_votes[f"{model}_action"], labels),
                    }
                )
        final = vote_reliability(decisions["final_action"], decisions["final_confidence"], labels)
        reliability.append(final.assign(symbol=symbol, model="meta_arbiter (final)"))
        skill.append(
            {
                "symbol": symbol,
                "model": "meta_arbiter (final)",
                **vote_skill(decisions["final_action"], labels),
            }
        )
        trades.append(comparison.results[symbol, "meta_arbiter"].trades.assign(symbol=symbol))
        mix.extend(_mix(decisions, symbol))
    equity = {}
    for symbol in bars:
        curves = comparison.equity[symbol].copy()
        curves.columns = [str(run) for run in curves.columns]  # as saved and read back
        equity[symbol] = curves
    verdict_frames: dict[str, Any] = {}
    if verdict is not False:
        verdicts = layer_verdicts(comparison, verdict)
        verdict_frames = {
            "verdict_tests": verdicts.tests.reset_index(),
            "verdict_effects": verdicts.effects.reset_index(),
            "verdict_track_record": verdicts.track_record.reset_index(),
            "verdict_power": verdicts.power.reset_index(),
            "verdict_set": verdicts.confidence_set.reset_index(),
            "verdict_regimes": verdicts.regimes.reset_index(),
            "verdict_break_even": _break_even(bars, votes, indicators, config, rules, rule_notes),
            "verdict_settings": _asdict(verdict),
        }
    summary = None
    if sweep_grid is not None:
        options = {**dict(sweep_options or {}), "verdict": verdict}
        summary = _sweep_summary(
            bars, votes, indicators, sweep_grid, config, rules, metric, options
        )
    return StudyResult(
        title=title,
        created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        config=_asdict(config),
        rules=_asdict(rules),
        inputs=_asdict(inputs),
        provenance=provenance(bars).join(
            comparison.windows.add_prefix("window_").rename(
                columns={"window_warmup_bars": "warmup_bars"}
            ),
            on="symbol",
        ),
        table=comparison.table,
        equity=equity,
        rollout=rollout_check(comparison).reset_index(),
        mix=pd.DataFrame(mix),
        overrides=pd.concat(overrides, ignore_index=True) if overrides else pd.DataFrame(),
        reliability=pd.concat(reliability, ignore_index=True),
        trades=pd.concat(trades, ignore_index=True),
        skill=pd.DataFrame(skill),
        sweep=summary,
        notes=[*notes, *coverage_notes, *rule_notes],
        **verdict_frames,
    )


def _break_even(bars, votes, indicators, config, rules, notes: list[str]) -> pd.DataFrame:
    """The break-even fees of the verdicts, or an empty frame and a note in ``notes`` when the
    sweep they come from cannot run under ``rules``."""
    unsupported = unsupported_rules(rules)
    if unsupported:
        notes.append(
            "Break-even fees are not computed: they come from a sweep, and the sweep does not "
            f"support {', '.join(unsupported)} yet."
        )
        return pd.DataFrame()
    with warnings.catch_warnings():
        # the comparison has said it already
        warnings.simplefilter("ignore", CoverageWarning)
        return break_even_fees(bars, votes, indicators, config=config, rules=rules).reset_index()


def _sweep_summary(bars, votes, indicators, grid, config, rules, metric, options) -> SweepSummary:
    from qt_backtest.sweep import Grid, sweep

    if not isinstance(grid, Grid):
        grid = Grid.product(grid)
    train_blocks = options.pop("train_blocks", None)
    max_splits = options.pop("max_splits", None)
    verdict = options.pop("verdict", VerdictSettings())
    if verdict is not False:
        # the sweep's returns per period are those the verdicts compare
        options.setdefault("period", verdict.period)
    with warnings.catch_warnings():
        # the comparison has said it already
        warnings.simplefilter("ignore", CoverageWarning)
        result = sweep(bars, votes, indicators, grid, config=config, rules=rules, **options)
    reports = result.overfitting(metric, train_blocks=train_blocks, max_splits=max_splits)
    walk = []
    plateau = []
    for symbol, report in reports.items():
        rows = result.frame[result.frame["symbol"] == symbol].reset_index(drop=True)
        steps = report.walk_forward.steps.assign(symbol=symbol)
        walk.append(steps.join(rows[list(result.grid.names)], on="chosen"))
        # the ten best plateaus of each mode: neighbours share their mode, so each mode's
        # best plateau is a choice of thresholds for that mode
        ranked = report.plateau.join(rows[["mode"]]) if "mode" in rows else report.plateau
        top = (
            ranked.groupby("mode", sort=False).head(10) if "mode" in ranked else ranked.head(10)
        ).drop(columns="mode", errors="ignore")
        plateau.append(
            rows.loc[top.index, ["combination", *result.grid.names]]
            .join(top[["plateau_median", "neighbours", metric]])
            .assign(symbol=symbol)
        )
    return SweepSummary(
        frame=result.frame,
        parameters=list(result.grid.names),
        metric=metric,
        # simulated: the distinct order streams the sweep ran (S-DUP-1)
        overfitting=pd.DataFrame(
            [
                {**report.summary(), "simulated": result.streams.get(symbol, len(result.grid))}
                for symbol, report in reports.items()
            ]
        ),
        walk_forward=pd.concat(walk, ignore_index=True),
        plateau=pd.concat(plateau, ignore_index=True),
        reference=result.reference,
        superiority=_superiority(result, verdict) if verdict is not False else pd.DataFrame(),
    )


def _superiority(result: Any, verdict: VerdictSettings) -> pd.DataFrame:
    """SPA, Reality Check and StepM of the sweep against ensemble-only and buy-and-hold."""
    if result.period is None:
        return pd.DataFrame()
    frames = []
    for benchmark in ("ensemble", "buy_and_hold"):
        try:
            frames.append(
                result.superiority(
                    benchmark,
                    size=verdict.alpha,
                    draws=verdict.draws,
                    block_length=verdict.block_length,
                    seed=verdict.seed,
                )
            )
        except ValueError as error:  # every combination trades like the benchmark
            frames.append(pd.DataFrame([{"benchmark": benchmark, "note": str(error)}]))
    frame = pd.concat(frames, ignore_index=True)
    # lists do not round-trip through parquet columns of mixed content: keep them as text
    if "better_combinations" in frame:
        frame["better_combinations"] = frame["better_combinations"].map(
            lambda value: " ".join(str(v) for v in value) if isinstance(value, list) else ""
        )
    return frame
