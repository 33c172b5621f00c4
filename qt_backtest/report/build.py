"""Render a :class:`StudyResult` as one self-contained HTML file (no network needed to open
it: styles inline, figures inline SVG)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from qt_backtest import __version__
from qt_backtest.atomic import atomic_write_text
from qt_backtest.report import figures
from qt_backtest.report.format import (
    escape,
    integer,
    money,
    number,
    percent,
    price,
    signed_percent,
    table,
)
from qt_backtest.report.study import StudyResult
from qt_backtest.sweep.run import rank_rows

COMPARISON_COLUMNS = [
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_duration",
    "ruined",
    "calmar",
    "trades",
    "win_rate",
    "profit_factor",
    "exposure",
    "turnover",
    "fees_paid",
]
SWEEP_COLUMNS = [
    "total_return",
    "sharpe",
    "max_drawdown",
    "trades",
    "escalation_rate",
    "override_rate_when_called",
]
TRADE_COLUMNS = [
    "entry_timestamp",
    "exit_timestamp",
    "direction",
    "size",
    "entry_price",
    "exit_price",
    "fees",
    "pnl",
    "return",
    "closed",
]
#: Section ids, in page order (a section without content is left out).
SECTIONS = (
    "configuration",
    "comparison",
    "decisions",
    "rollout",
    "overrides",
    "models",
    "sweep",
    "trades",
)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _flatten(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            rows.append((name, ", ".join(f"{a}: {b}" for a, b in value)))
        else:
            rows.append((name, "None" if value is None else str(value)))
    return rows


def _settings_table(study: StudyResult) -> str:
    rows = [("hierarchy." + k, v) for k, v in _flatten(study.config)]
    rows += [("rules." + k, v) for k, v in _flatten(study.rules)]
    rows += [("indicators." + k, v) for k, v in _flatten(study.inputs)]
    frame = pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")
    return f"<details><summary>All {len(frame):,} settings</summary>{table(frame)}</details>"


def _configuration(study: StudyResult) -> list[str]:
    config = study.config
    rules = study.rules
    minimum = config["min_trade_confidence"]
    governor = "off" if minimum is None else number(minimum)
    summary = (
        f"<p>Mode <code>{escape(config['mode'])}</code>, fidelity "
        f"<code>{escape(config['fidelity'])}</code>, Arbiter wiring "
        f"<code>{escape(config['arbiter']['wiring'])}</code>, MACD in "
        f"<code>{escape(study.inputs['macd_scale'])}</code> units. Arbiter threshold "
        f"{number(config['arbiter']['arbiter_threshold'])}, Meta consensus "
        f"{number(config['meta']['consensus_threshold'])}, disagreement "
        f"{number(config['meta']['disagreement_threshold'])}, low confidence "
        f"{number(config['meta']['low_confidence_threshold'])}, risk governor "
        f"{governor}."
        f" Positions: {'long only' if rules['long_only'] else 'long and short'}, HOLD "
        f"{'keeps the position' if rules['hold'] == 'keep' else 'goes flat'}, fills at the "
        f"{escape(rules['fill_price'])} {escape(rules['execution_lag'])} bar(s) after the "
        "decision, fees "
        f"{percent(rules['fee'], 3)} a side, slippage {number(rules['slippage_bps'], 1)} bps, "
        f"initial cash {money(rules['init_cash'])}.</p>"
    )
    provenance = study.provenance.set_index("symbol")
    return [
        summary,
        "<h3>Data</h3>",
        "<div class='scroll'>"
        + table(
            provenance,
            {
                "first_bar": _stamp,
                "last_bar": _stamp,
                "window_start": _stamp,
                "window_end": _stamp,
                "sha256": lambda v: str(v)[:16] + "…",
            },
        )
        + "</div>",
        _settings_table(study),
    ]


def _window_sentence(study: StudyResult) -> list[str]:
    """Where every run was scored: each symbol's evaluation window."""
    provenance = study.provenance
    if "window_start" not in provenance.columns:
        return []
    parts = [
        f"{escape(str(row.symbol))} {_stamp(row.window_start)} to {_stamp(row.window_end)} "
        f"({integer(row.window_bars)} bars, {integer(row.warmup_bars)} warm-up bars before)"
        for row in provenance.itertuples()
    ]
    return [
        "<p>Evaluation window, the same for every run (first to last bar with a model vote): "
        + "; ".join(parts)
        + ".</p>"
    ]


def _stamp(value: Any) -> str:
    return f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"


def _comparison(study: StudyResult) -> list[str]:
    columns = [c for c in COMPARISON_COLUMNS if c in study.table.columns]
    warnings = []
    if "ruined" in study.table.columns and study.table["ruined"].astype(bool).any():
        ruined = ", ".join(
            f"{symbol} {run}"
            for symbol, run in study.table.index[study.table["ruined"].astype(bool)]
        )
        warnings.append(
            f"<p class='note'>Closed out (ruined): {escape(ruined)}. Equity reached the "
            "maintenance level; the account was liquidated and traded no more.</p>"
        )
    blocks = [
        *warnings,
        "<p>Each rollout stage on the same bars and votes: <code>ensemble</code> only, "
        "<code>meta</code> (escalations recorded, the ensemble still trades), "
        "<code>meta_arbiter</code> (the full design), and as references the Arbiter alone "
        "and <code>buy_and_hold</code> of the symbol (same fees, lag and fills). "
        "Sharpe, Sortino and CAGR are annualised with the stated bars per year.</p>",
        *_window_sentence(study),
        "<div class='scroll'>"
        + table(study.table[columns], table_id="comparison-table")
        + "</div>",
    ]
    init_cash = float(study.rules["init_cash"])
    for symbol, equity in study.equity.items():
        per_year = study.table.loc[(symbol, equity.columns[0]), "periods_per_year"]
        blocks.append(
            _figure(
                figures.equity_and_drawdown(equity, init_cash, f"{symbol}: equity and drawdown"),
                f"{symbol}: equity of each run in quote currency (log scale) and its drawdown "
                f"below the running peak, in percent. {integer(len(equity))} bars, annualised "
                f"with {integer(per_year)} bars a year. Meta mode trades exactly like the "
                "ensemble, so its curve covers the ensemble's.",
            )
        )
    return blocks


def _decisions(study: StudyResult) -> list[str]:
    blocks = [
        "<p>How the <code>meta_arbiter</code> run decided, on bars where at least one model "
        "voted: who made the final decision, what Meta did and why, and what the Arbiter said "
        "when it was called.</p>"
    ]
    for symbol in study.symbols:
        rows = study.mix[study.mix["symbol"] == symbol]
        for kind in ("decision source", "Meta reason", "Arbiter reason", "gate outcome"):
            part = rows[rows["kind"] == kind].set_index("category")["share"]
            if len(part):
                blocks.append(
                    _figure(
                        figures.horizontal_bars(
                            part,
                            f"{symbol}: {kind}",
                            "share of bars (%)"
                            if kind in ("decision source", "Meta reason")
                            else "share of Arbiter calls (%)",
                        ),
                        f"{symbol}: {kind}, {integer(rows[rows['kind'] == kind]['count'].sum())} "
                        "bars in all.",
                    )
                )
    return blocks


def _badge(passes: bool) -> str:
    return (
        "<span class='badge pass'>pass</span>" if passes else "<span class='badge fail'>fail</span>"
    )


def _rollout(study: StudyResult) -> list[str]:
    frame = study.rollout
    shown = frame.set_index(["symbol", "criterion"]).drop(columns=["passes"])
    shown["value"] = [
        number(value, 3) if criterion == "sharpe_vs_ensemble" else percent(value)
        for criterion, value in zip(frame["criterion"], frame["value"], strict=True)
    ]
    shown["result"] = [_badge(passes) for passes in frame["passes"]]
    passed = int(frame["passes"].sum())
    return [
        f"<p>The rollout plan's targets (H-ROLL-8) and no Sharpe loss against ensemble-only: "
        f"{passed} of {len(frame)} criteria pass.</p>",
        table(
            shown,
            {"value": str},  # formatted above, per criterion
            raw={"result"},
            row_classes=["" if passes else "fail" for passes in frame["passes"]],
            table_id="rollout-table",
        ),
    ]


def _overrides(study: StudyResult) -> list[str]:
    values = study.overrides
    if values.empty:
        return ["<p>The Arbiter made no override in these runs.</p>"]
    blocks = [
        "<p>Each Arbiter override against its counterfactual: the same run with that one bar "
        "left to the ensemble, simulated until the two paths agree again. The value is the "
        "difference in final equity (quote currency).</p>"
    ]
    for symbol in values["symbol"].unique():
        part = values[values["symbol"] == symbol]
        value = part["value"].to_numpy(dtype=float)
        blocks.append(
            f"<p><strong>{escape(str(symbol))}</strong>: {integer(len(part))} overrides "
            f"valued, total {money(value.sum())}, mean {money(value.mean())}, adding value in "
            f"{percent(np.mean(value > 0))} and changing nothing in {percent(np.mean(value == 0))}."
            "</p>"
        )
        blocks.append(
            _figure(
                figures.histogram(
                    value,
                    f"{symbol}: value of each override",
                    "value against the counterfactual (quote currency)",
                ),
                f"{symbol}: distribution of override values; the dashed line is the mean.",
            )
        )
        if "arbiter_reason" in part:
            by_reason = (
                part.groupby("arbiter_reason")["value"]
                .agg(count="count", total="sum", mean="mean")
                .sort_values("count", ascending=False)
                .head(10)
            )
            blocks.append(table(by_reason, {"total": money, "mean": money}))
    return blocks


def _models(study: StudyResult) -> list[str]:
    frame = study.reliability
    if frame.empty:
        return []
    blocks = [
        "<p>Reliability: the stated confidence of each model's votes (and of the final "
        "decisions) against how often the vote matched the label (the forward 5-bar return "
        "class). A calibrated voter sits on the diagonal. The labels are not balanced, so a "
        "voter without skill is measured against two baselines: the hit rate of always voting "
        "the most frequent label (majority rate) and of voting at random with the label "
        "frequencies (random rate); balanced accuracy is the mean recall of the three classes "
        "(1/3 without skill).</p>"
    ]
    for symbol in frame["symbol"].unique():
        part = frame[frame["symbol"] == symbol]
        tables = {model: rows for model, rows in part.groupby("model", sort=False)}
        blocks.append(
            _figure(
                figures.reliability(tables, f"{symbol}: reliability"),
                f"{symbol}: hit rate against stated confidence, per confidence decile.",
            )
        )
        overall = part.groupby("model", sort=False).apply(
            lambda g: pd.Series(
                {
                    "bars": g["bars"].sum(),
                    "mean_confidence": np.average(g["mean_confidence"], weights=g["bars"]),
                    "hit_rate": np.average(g["hit_rate"], weights=g["bars"]),
                }
            ),
            include_groups=False,
        )
        blocks.append(table(overall))
        skill = getattr(study, "skill", None)
        if skill is not None and len(skill) and symbol in set(skill["symbol"]):
            rows = skill[skill["symbol"] == symbol].drop(columns="symbol").set_index("model")
            shown = {
                column: percent
                for column in rows.columns
                if column.startswith(("hit_rate", "balanced", "recall", "majority", "random"))
            }
            blocks.append("<div class='scroll'>" + table(rows, shown, table_id=None) + "</div>")
    return blocks


def _plateau_row(sweep: Any, symbol: str, rows: pd.DataFrame) -> pd.Series | None:
    """The row of ``rows`` that is the best listed plateau of ``symbol``, or None when no
    listed plateau is among them."""
    listed = sweep.plateau[
        (sweep.plateau["symbol"] == symbol) & sweep.plateau["combination"].isin(rows["combination"])
    ]
    if not len(listed):
        return None
    return rows[rows["combination"] == listed["combination"].iloc[0]].iloc[0]


def _deciding_parameters(frame: pd.DataFrame, parameters: list[str]) -> list[str]:
    """Numeric swept parameters, those that split the most decision streams first: the mean
    number of distinct streams a parameter's values give with every other parameter fixed.
    A parameter that changes no decision (a Meta threshold above every share) scores 1."""
    numeric = [
        p
        for p in parameters
        if p != "mode" and pd.api.types.is_numeric_dtype(frame[p]) and frame[p].nunique() > 1
    ]
    if "stream" not in frame.columns:
        return numeric
    scores = {}
    for name in numeric:
        others = [p for p in parameters if p != name]
        grouped = frame.groupby(others, dropna=False)["stream"] if others else None
        scores[name] = (
            grouped.nunique().mean() if grouped is not None else frame["stream"].nunique()
        )
    return sorted(numeric, key=lambda name: -scores[name])


def _heatmaps(
    study: StudyResult, symbol: str, pairs: list[tuple[str, str]] | None = None
) -> list[str]:
    sweep = study.sweep
    assert sweep is not None  # drawn only for a study with a sweep
    frame = sweep.frame[sweep.frame["symbol"] == symbol]
    parameters = list(sweep.parameters)
    if "mode" in frame.columns and "meta_arbiter" in set(frame["mode"]):
        # Meta alone trades like the ensemble: only the full hierarchy has a surface to show
        frame = frame[frame["mode"] == "meta_arbiter"]
        parameters = [p for p in parameters if p != "mode"]
    if pairs is None:
        deciding = _deciding_parameters(frame, parameters)
        pairs = [(deciding[0], deciding[1])] if len(deciding) >= 2 else []
    for pair in pairs:
        unknown = [name for name in pair if name not in sweep.parameters]
        if unknown:
            raise ValueError(f"heatmap parameter(s) {unknown} are not swept: {sweep.parameters}")
    if not pairs:
        return []
    metric = sweep.metric
    best = rank_rows(frame, metric).iloc[0]
    plateau = _plateau_row(sweep, symbol, frame)
    blocks = []
    for x_name, y_name in pairs:
        others = [p for p in parameters if p not in (x_name, y_name)]
        # the slice through the best combination: every other parameter at its value
        mask = np.ones(len(frame), dtype=bool)
        for name in others:
            mask &= (frame[name] == best[name]).to_numpy() | (
                frame[name].isna() & pd.isna(best[name])
            ).to_numpy()
        pivot = frame[mask].pivot_table(index=y_name, columns=x_name, values=metric)
        marks = {"best": (best[x_name], best[y_name])}
        marked = "a red box marks the best cell"
        if plateau is not None and all(
            plateau[name] == best[name] for name in others if pd.notna(best[name])
        ):
            marks["plateau"] = (plateau[x_name], plateau[y_name])
            marked += ", a white box the centre of the most robust plateau"
        fixed = (
            ", ".join(f"{name} = {_value_text(best[name])}" for name in others)
            or "nothing else swept"
        )
        mode = f" ({best['mode']})" if "mode" in frame.columns else ""
        blocks.append(
            _figure(
                figures.heatmap(
                    pivot,
                    f"{symbol}: {metric} over {y_name} by {x_name}",
                    metric.replace("_", " "),
                    marks=marks,
                ),
                f"{symbol}{mode}: {metric} (annualised where a ratio) of each combination of "
                f"{x_name} and {y_name}, with {fixed} (the best combination's values); "
                f"{marked}.",
            )
        )
    return blocks


def _best_table(rows: pd.DataFrame, sweep: Any, symbol: str, count: int = 10) -> pd.DataFrame:
    """The best ``count`` distinct decision streams (one row each: the first combination that
    trades it, and how many combinations do), then buy-and-hold as a reference row."""
    ranked = rank_rows(rows, sweep.metric)
    columns = ["combination", *sweep.parameters]
    if "stream" in ranked.columns:
        sizes = rows.groupby("stream").size()
        ranked = ranked.drop_duplicates("stream").assign(
            same_trades=lambda f: f["stream"].map(sizes).to_numpy()
        )
        columns.append("same_trades")
    top = ranked.head(count)[[*columns, *SWEEP_COLUMNS]].astype({"combination": object})
    reference = getattr(sweep, "reference", None)
    if reference is not None and len(reference) and symbol in set(reference["symbol"]):
        row = reference[reference["symbol"] == symbol].iloc[0]
        extra = {"combination": str(row["run"])}
        extra.update({name: row[name] for name in SWEEP_COLUMNS if name in row.index})
        top = pd.concat([top, pd.DataFrame([extra])], ignore_index=True)
    return top.set_index("combination")


def _best_table_caption(rows: pd.DataFrame, metric: str) -> str:
    text = f"Best combinations by {metric}, closed-out (ruined) ones last"
    if "stream" in rows.columns:
        text += (
            f"; combinations that trade identically are one row ({rows['stream'].nunique()} "
            f"distinct streams of orders among {len(rows)} combinations; same_trades counts "
            "them)"
        )
    return text + ". The last row is buy-and-hold of the symbol on the same bars."


def _parameters_text(sweep: Any, symbol: str, combination: Any) -> str:
    """``name = value, ...`` of one combination of the sweep."""
    rows = sweep.frame[
        (sweep.frame["symbol"] == symbol) & (sweep.frame["combination"] == combination)
    ]
    if not len(rows):
        return str(combination)
    row = rows.iloc[0]
    return ", ".join(f"{name} = {_value_text(row[name])}" for name in sweep.parameters)


def _value_text(value: Any) -> str:
    """A parameter value as set: None where the sweep frame holds NaN."""
    return (
        "None" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
    )


def _sweep(study: StudyResult, heatmaps: list[tuple[str, str]] | None = None) -> list[str]:
    sweep = study.sweep
    if sweep is None:
        return []
    metric = sweep.metric
    combos = sweep.frame["combination"].nunique()
    names = ", ".join(f"<code>{escape(name)}</code>" for name in sweep.parameters)
    blocks = [
        f"<p>{integer(combos)} combinations of {names}"
        f" per symbol, each decided, traded and scored by the fused sweep kernel. "
        f"Overfitting controls rank by <code>{escape(metric)}</code>: PBO is the probability "
        "that the "
        "in-sample best combination ranks at or below the median out of sample (CSCV over the "
        "time blocks); the deflated Sharpe ratio is the probability that the best Sharpe ratio "
        "beats what the best of this many skill-less trials would show; walk-forward selection "
        "chooses on four blocks and trades the next.</p>"
    ]
    overview = sweep.overfitting.set_index("symbol").copy()
    # combinations by their parameter values, not their position in the grid
    for column in ("best_combination", "plateau_combination"):
        if column in overview.columns:
            overview[column] = [
                _parameters_text(sweep, symbol, number)
                for symbol, number in overview[column].items()
            ]
    formats = {
        "pbo": percent,
        "deflated_sharpe": percent,
        "walk_forward_oos_return": signed_percent,
        "best_sharpe": number,
        "plateau_sharpe": number,
        "walk_forward_oos_sharpe_per_bar": lambda v: number(v, 4),
        "walk_forward_is_sharpe_per_bar": lambda v: number(v, 4),
    }
    blocks.append(
        "<div class='scroll'>" + table(overview, formats, table_id="overfitting") + "</div>"
    )
    blocks += _superiority(sweep)
    for symbol in overview.index:
        rows = sweep.frame[sweep.frame["symbol"] == symbol]
        blocks.append(f"<h3>{escape(str(symbol))}</h3>")
        blocks.extend(_heatmaps(study, symbol, heatmaps))
        blocks.append("<p>" + escape(_best_table_caption(rows, metric)) + "</p>")
        blocks.append(
            "<div class='scroll'>"
            + table(_best_table(rows, sweep, symbol), table_id=None)
            + "</div>"
        )
        plateau = sweep.plateau[sweep.plateau["symbol"] == symbol].drop(columns="symbol")
        blocks.append("<p>Best plateaus (median of each combination's grid neighbourhood):</p>")
        blocks.append("<div class='scroll'>" + table(plateau.set_index("combination")) + "</div>")
        steps = sweep.walk_forward[sweep.walk_forward["symbol"] == symbol]
        if len(steps):
            per_year = float(rows["periods_per_year"].iloc[0])
            blocks.append(
                _figure(
                    figures.walk_forward(steps, f"{symbol}: walk-forward selection", per_year),
                    f"{symbol}: annualised Sharpe of the combination chosen on the preceding "
                    "blocks, in sample and on the next block.",
                )
            )
    return blocks


def _superiority(sweep: Any) -> list[str]:
    """SPA, Reality Check and StepM beside PBO and the deflated Sharpe ratio."""
    frame = sweep.superiority
    if frame is None or frame.empty or "spa_consistent" not in frame.columns:
        return []
    rows = frame.dropna(subset=["spa_consistent"]).copy()
    size = float(rows["size"].iloc[0])
    rows["benchmark"] = rows["benchmark"].str.replace("_", "-")
    rows["better_combinations"] = [
        ", ".join(_parameters_text(sweep, symbol, int(number)) for number in str(text).split()[:3])
        + (" …" if len(str(text).split()) > 3 else "")
        for symbol, text in zip(rows["symbol"], rows["better_combinations"], strict=True)
    ]
    shown = rows.set_index(["symbol", "benchmark"])[
        [
            "spa_consistent",
            "spa_lower",
            "spa_upper",
            "reality_check",
            "better",
            "distinct",
            "years",
            "min_backtest_years",
            "better_combinations",
        ]
    ]
    return [
        "<p>Does any combination beat the benchmark in mean daily return beyond chance, after "
        "trying them all? Hansen's SPA test (consistent p-value, with its lower and upper "
        "bounds) and White's Reality Check test whether the best is better than chance "
        f"allows; Romano and Wolf's StepM names the combinations better at a {size:.0%} "
        "family-wise error rate. Combinations trading identically are one trial "
        "(distinct return series). The minimum backtest length is the history below which "
        "the best combination's Sharpe ratio is what the best of that many skill-less trials "
        "would show by chance.</p>",
        "<div class='scroll'>"
        + table(
            shown,
            {
                "spa_consistent": _p_text,
                "spa_lower": _p_text,
                "spa_upper": _p_text,
                "reality_check": _p_text,
                "years": lambda v: number(v, 1),
                "min_backtest_years": lambda v: number(v, 1),
            },
            labels={
                "years": "years of returns",
                "min_backtest_years": "minimum backtest (years)",
                "spa_consistent": "SPA p",
                "spa_lower": "SPA p (lower)",
                "spa_upper": "SPA p (upper)",
                "reality_check": "Reality Check p",
                "better": "better (StepM)",
                "distinct": "distinct series",
                "better_combinations": "first better combinations",
            },
            table_id="superiority",
        )
        + "</div>",
    ]


def _price_decimals(study: StudyResult, symbol: str) -> int:
    """The decimals of the symbol's quoted prices (2 for studies saved without them)."""
    provenance = study.provenance
    if "price_decimals" not in provenance.columns:
        return 2
    rows = provenance[provenance["symbol"] == symbol]
    return int(rows["price_decimals"].iloc[0]) if len(rows) else 2


def _trades(study: StudyResult, max_trades: int) -> list[str]:
    blocks = []
    for symbol in study.symbols:
        part = study.trades[study.trades["symbol"] == symbol]
        shown = part[[c for c in TRADE_COLUMNS if c in part.columns]].head(max_trades)
        decimals = _price_decimals(study, symbol)
        prices = {
            name: (lambda value, d=decimals: price(value, d))
            for name in ("entry_price", "exit_price")
        }
        blocks.append(
            f"<h3>{escape(str(symbol))}</h3><p>Trades of the <code>meta_arbiter</code> run: "
            f"showing {integer(len(shown))} of {integer(len(part))}.</p>"
        )
        blocks.append("<div class='scroll'>" + table(shown, prices, index=False) + "</div>")
    return blocks


def answer_sentence(study: StudyResult) -> str:
    """One sentence: does the full hierarchy pay against ensemble-only and buy-and-hold, and
    which thresholds the sweep would deploy (point estimates, no uncertainty)."""
    table = study.table
    symbols = list(dict.fromkeys(table.index.get_level_values("symbol")))
    scope = "equal_weight" if "equal_weight" in symbols else symbols[0]
    runs = set(table.loc[scope].index)

    def sharpe(run: str) -> float:
        return float(table.loc[(scope, run), "sharpe"])

    where = "equal weight" if scope == "equal_weight" else str(scope)
    text = f"{where}: "
    if {"ensemble", "meta_arbiter"} <= runs:
        full, base = sharpe("meta_arbiter"), sharpe("ensemble")
        verdict = "add value" if full > base else "lose value"
        text += (
            f"the full hierarchy (Meta + Arbiter) has Sharpe {number(full)} against "
            f"{number(base)} for the ensemble alone, so the upper layers {verdict} at these "
            "thresholds"
        )
        if "buy_and_hold" in runs:
            text += f" (buy-and-hold {number(sharpe('buy_and_hold'))})"
    sweep = study.sweep
    if sweep is not None:
        choices = [_sweep_choice(study, symbol) for symbol in sweep.overfitting["symbol"]]
        choices = [choice for choice in choices if choice]
        if choices:
            text += "; thresholds for the full hierarchy from the sweep: " + "; ".join(choices)
    return text + ". Point estimates on one history: differences may be within chance."


def _sweep_choice(study: StudyResult, symbol: str) -> str:
    """The sweep's choice of ``meta_arbiter`` thresholds for ``symbol``: its most robust
    plateau when one of the listed plateaus is a ``meta_arbiter`` row, else its best row."""
    sweep = study.sweep
    assert sweep is not None  # asked only for a study with a sweep
    rows = sweep.frame[sweep.frame["symbol"] == symbol]
    if "mode" in rows.columns:
        rows = rows[rows["mode"] == "meta_arbiter"]
    if not len(rows):
        return ""
    chosen = _plateau_row(sweep, symbol, rows)
    if chosen is not None:
        kind = "most robust plateau"
    else:
        chosen = rank_rows(rows, sweep.metric).iloc[0]
        kind = "best"
    values = ", ".join(
        f"{name} = {_value_text(chosen[name])}" for name in sweep.parameters if name != "mode"
    )
    text = f"{symbol} {values} ({kind}, {sweep.metric} {number(float(chosen[sweep.metric]))}"
    key = (symbol, "ensemble")
    if sweep.metric in study.table.columns and key in study.table.index:
        base = float(study.table.loc[key, sweep.metric])
        text += f" against {number(base)} for the ensemble alone"
    return text + ")"


#: How the verdicts' transitions are shown in tables and figures.
TRANSITION_SHORT = {
    ("meta", "ensemble"): "Meta vs ensemble",
    ("meta_arbiter", "meta"): "Arbiter vs Meta",
    ("meta_arbiter", "ensemble"): "Meta+Arbiter vs ensemble",
    ("meta_arbiter", "buy_and_hold"): "Meta+Arbiter vs buy-and-hold",
}
EFFECT_LABELS = {
    "sharpe": "Sharpe (annualised)",
    "annual_mean": "mean return a year",
    "sortino": "Sortino (annualised)",
    "max_drawdown": "max drawdown",
}


def _transition(later: str, earlier: str) -> str:
    return TRANSITION_SHORT.get((later, earlier), f"{later} vs {earlier}")


def _p_text(value: Any) -> str:
    if not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{float(value):.3f}"


def _interval_text(low: Any, high: Any, formatter=number) -> str:
    return f"[{formatter(low)}, {formatter(high)}]"


def _verdict(study: StudyResult) -> list[str]:
    tests = study.verdict_tests
    if tests.empty:
        return []
    settings = study.verdict_settings
    confidence = float(settings.get("confidence", 0.9))
    block = settings.get("block_length")
    blocks = [
        "<p>Does each layer earn its keep beyond chance? Each transition compares two runs on "
        f"the same {escape(settings.get('period', '1D'))} periods (paired returns, same costs). "
        f"{confidence:.0%} intervals from {integer(settings.get('draws', 0))} paired "
        "stationary-bootstrap resamples (block length "
        f"{'automatic' if block is None else escape(block)}, seed "
        f"{escape(settings.get('seed', 0))}): studentised (bootstrap-t) for the Sharpe "
        "difference, percentiles for the other metrics. p-values: Ledoit and Wolf's HAC test "
        "of equal Sharpe ratios (two-sided), its studentised block-bootstrap variant, and the "
        "iid test (assumes independent returns, shown for comparison). A layer adds or loses "
        "value when "
        f"the interval excludes 0 and the HAC p-value is below {1 - confidence:.2f}.</p>",
        "<ul class='verdicts'>"
        + "".join(
            f"<li class='{escape(_verdict_class(word))}'>{escape(sentence)}</li>"
            for sentence, word in zip(tests["sentence"], tests["verdict"], strict=True)
        )
        + "</ul>",
    ]
    shown = tests[tests["verdict"] != "identical returns"]
    if len(shown):
        effects = shown.assign(
            label=[
                f"{symbol} · {_transition(later, earlier)}"
                for symbol, later, earlier in zip(
                    shown["symbol"], shown["later"], shown["earlier"], strict=True
                )
            ]
        ).set_index("label")[["sharpe_difference", "low", "high"]]
        effects = effects.rename(columns={"sharpe_difference": "estimate"})
        blocks.append(
            _figure(
                figures.forest(
                    effects,
                    "Sharpe difference of each transition",
                    "annualised Sharpe difference, later minus earlier",
                    confidence,
                ),
                "Annualised Sharpe ratio of the later run minus the earlier one, per symbol and "
                "transition: dot the estimate, line the interval; green wholly above zero, red "
                "wholly below. Transitions with identical returns are left out.",
            )
        )
    table_rows = tests.assign(
        transition=[
            _transition(later, earlier)
            for later, earlier in zip(tests["later"], tests["earlier"], strict=True)
        ],
        interval=[
            _interval_text(low, high) for low, high in zip(tests["low"], tests["high"], strict=True)
        ],
    ).set_index(["symbol", "transition"])
    table_rows = table_rows[
        [
            "sharpe_difference",
            "interval",
            "p_value",
            "p_value_greater",
            "bootstrap_p_value",
            "iid_p_value",
            "periods",
            "verdict",
        ]
    ]
    blocks.append(
        "<div class='scroll'>"
        + table(
            table_rows,
            {
                "sharpe_difference": lambda v: number(v),
                "p_value": _p_text,
                "p_value_greater": _p_text,
                "bootstrap_p_value": _p_text,
                "iid_p_value": _p_text,
            },
            labels={
                "sharpe_difference": "Sharpe difference",
                "p_value": "HAC p",
                "p_value_greater": "HAC p (later better)",
                "bootstrap_p_value": "bootstrap p",
                "iid_p_value": "iid p (assumes independence)",
            },
            table_id="verdict-table",
        )
        + "</div>"
    )
    blocks += _verdict_effects(study, confidence)
    blocks += _verdict_regimes(study, confidence)
    blocks += _verdict_break_even(study)
    blocks += _verdict_confidence_set(study, confidence)
    blocks += _verdict_track_record(study, settings)
    return blocks


def _verdict_class(word: str) -> str:
    return {"adds value": "adds", "loses value": "loses"}.get(word, "undecided")


def _verdict_effects(study: StudyResult, confidence: float) -> list[str]:
    effects = study.verdict_effects
    if effects.empty:
        return []
    tests = study.verdict_tests
    same = tests[tests["verdict"] == "identical returns"]
    identical = set(zip(same["symbol"], same["later"], same["earlier"], strict=True))
    rows = effects[effects["metric"] != "sharpe"]
    keys = zip(rows["symbol"], rows["later"], rows["earlier"], strict=True)
    keep = [key not in identical for key in keys]
    rows = rows[keep]
    percent_like = {"annual_mean", "max_drawdown"}
    cells = []
    for _, row in rows.iterrows():
        formatter = signed_percent if row["metric"] in percent_like else number
        cells.append(
            {
                "symbol": row["symbol"],
                "transition": _transition(row["later"], row["earlier"]),
                "metric": EFFECT_LABELS.get(row["metric"], row["metric"]),
                "difference": formatter(row["estimate"]),
                "interval": _interval_text(row["low"], row["high"], formatter),
            }
        )
    frame = pd.DataFrame(cells).set_index(["symbol", "transition", "metric"])
    return [
        f"<p>The other differences, with their {confidence:.0%} bootstrap intervals (later "
        "minus earlier; a drawdown difference above 0 is a shallower drawdown).</p>",
        "<div class='scroll'>" + table(frame, table_id="verdict-effects") + "</div>",
    ]


def _verdict_regimes(study: StudyResult, confidence: float) -> list[str]:
    frame = study.verdict_regimes
    if frame.empty:
        return []
    rows = []
    for (symbol, later, earlier, _, regime), group in frame.groupby(
        ["symbol", "later", "earlier", "family", "regime"], sort=False, observed=True
    ):
        values = group.set_index("metric")
        sharpe, mean = values.loc["sharpe"], values.loc["annual_mean"]
        rows.append(
            {
                "symbol": symbol,
                "transition": _transition(later, earlier),
                "regime": regime,
                "Sharpe difference": number(sharpe["estimate"]),
                "Sharpe interval": _interval_text(sharpe["low"], sharpe["high"]),
                "mean return a year": signed_percent(mean["estimate"]),
                "mean interval": _interval_text(mean["low"], mean["high"], signed_percent),
                "periods": int(sharpe["periods"]),
            }
        )
    shown = pd.DataFrame(rows).set_index(["symbol", "transition", "regime"])
    return [
        "<h3>Where the value comes from</h3>",
        "<p>Each transition's value within market regimes decided before each period from "
        "past data only: terciles of trailing 30-period realised volatility (thresholds from "
        "the volatility seen so far) and the sign of the trailing 30-period return. "
        f"{confidence:.0%} intervals from the same paired bootstrap; the first months, whose "
        "history is too short to classify, are in no regime.</p>",
        "<div class='scroll'>" + table(shown, table_id="verdict-regimes") + "</div>",
    ]


def _verdict_break_even(study: StudyResult) -> list[str]:
    frame = study.verdict_break_even
    if frame.empty:
        return []
    fee = float(study.rules.get("fee", np.nan))
    shown = frame.assign(
        transition=[
            _transition(later, earlier)
            for later, earlier in zip(frame["later"], frame["earlier"], strict=True)
        ],
        metric=frame["metric"].map({"total_return": "total return", "sharpe": "Sharpe"}),
        advantage_at_fee=[
            signed_percent(value) if metric == "total_return" else number(value)
            for metric, value in zip(frame["metric"], frame["advantage_at_fee"], strict=True)
        ],
        break_even_fee=[
            f"{value * 1e4:.2f} bp" if np.isfinite(value) else "n/a"
            for value in frame["break_even_fee"]
        ],
    ).set_index(["symbol", "transition", "metric"])[
        ["advantage_at_fee", "break_even_fee", "status"]
    ]
    return [
        f"<p>Break-even cost: the fee per side at which the later run's advantage reaches "
        f"zero (the rules charge {fee * 1e4:.2f} bp; 1 bp = 0.01 %), searched from 0 to "
        "100 bp.</p>",
        "<div class='scroll'>"
        + table(
            shown,
            {"advantage_at_fee": str, "break_even_fee": str},
            labels={"advantage_at_fee": "advantage at the rules' fee"},
            table_id="verdict-break-even",
        )
        + "</div>",
    ]


def _verdict_confidence_set(study: StudyResult, confidence: float) -> list[str]:
    frame = study.verdict_set
    if frame.empty:
        return []
    shown = frame.set_index(["symbol", "run"])
    return [
        f"<p>Model Confidence Set (Hansen, Lunde and Nason) of the three stages at "
        f"{confidence:.0%}: the stages that may hold the best mean period return; a stage "
        "outside it is worse than the best beyond chance.</p>",
        table(
            shown,
            {"pvalue": _p_text},
            labels={"pvalue": "MCS p-value", "included": "in the set"},
            table_id="verdict-confidence-set",
        ),
    ]


def _verdict_track_record(study: StudyResult, settings: dict[str, Any]) -> list[str]:
    frame = study.verdict_track_record
    if frame.empty:
        return []
    alpha = float(settings.get("alpha", 0.05))
    shown = frame.set_index(["symbol", "run"])[
        ["sharpe", "periods", "min_track_record", "min_track_record_years", "enough"]
    ]
    return [
        f"<p>Minimum track record (Bailey and López de Prado): the periods each run's Sharpe "
        f"ratio needs, at its skewness and kurtosis, to exceed 0 at {1 - alpha:.0%} "
        "confidence; infinite when it is not above 0.</p>",
        table(
            shown,
            {
                "sharpe": lambda v: number(v),
                "min_track_record": lambda v: integer(v) if np.isfinite(v) else "∞",
                "min_track_record_years": lambda v: number(v, 1) if np.isfinite(v) else "∞",
            },
            labels={
                "periods": "periods held",
                "min_track_record": "periods needed",
                "min_track_record_years": "years needed",
                "enough": "long enough",
            },
            table_id="verdict-track-record",
        ),
    ]


def _rollout_power(study: StudyResult) -> list[str]:
    frame = study.verdict_power
    if frame.empty:
        return []
    settings = study.verdict_settings
    rows = frame[(frame["later"] == "meta_arbiter") & (frame["earlier"] == "ensemble")]
    if rows.empty:
        return []
    shown = rows.assign(
        annual_drop=[number(v) for v in rows["annual_drop"]],
    ).set_index(["symbol", "annual_drop"])[["days", "bars"]]
    return [
        '<p>How long the "no Sharpe degradation" criterion must run to mean something: live '
        "days (and bars) a one-sided test at "
        f"{float(settings.get('alpha', 0.05)):.0%} needs to detect an annualised Sharpe drop "
        f"of the full hierarchy against ensemble-only with {float(settings.get('power', 0.8)):.0%}"
        " power, from the paired variance estimated on this history.</p>",
        table(
            shown,
            {
                "days": lambda v: integer(v) if np.isfinite(v) else "n/a",
                "bars": lambda v: integer(v) if np.isfinite(v) else "n/a",
            },
            labels={"annual_drop": "annualised Sharpe drop"},
            table_id="rollout-power",
        ),
    ]


def _answer(study: StudyResult) -> list[str]:
    try:
        sentence = answer_sentence(study)
    except (KeyError, IndexError):
        return []
    return [f"<p class='answer'>{escape(sentence)}</p>"]


def render_report(
    study: StudyResult,
    *,
    max_trades: int = 50,
    heatmaps: list[tuple[str, str]] | None = None,
) -> str:
    """The report as an HTML string.

    ``heatmaps`` names the (x, y) parameter pairs of the sweep heatmaps; by default up to three
    pairs of successive numeric parameters of the grid.
    """
    built = {
        "verdict": ("Verdict", _verdict(study)),
        "answer": ("Answer", _answer(study)),
        "configuration": ("Configuration and data", _configuration(study)),
        "comparison": ("Mode comparison", _comparison(study)),
        "decisions": ("Decision sources and reasons", _decisions(study)),
        "rollout": ("Rollout check", _rollout(study) + _rollout_power(study)),
        "overrides": ("Override value", _overrides(study)),
        "models": ("Model diagnostics", _models(study)),
        "sweep": ("Threshold sweep and overfitting", _sweep(study, heatmaps)),
        "trades": ("Trades", _trades(study, max_trades)),
    }
    sections = [dict(section) for section in study.extra_sections]
    sections += [
        {"id": key, "title": title, "blocks": blocks}
        for key, (title, blocks) in built.items()
        if blocks
    ]
    return render_page(
        study.title,
        sections,
        created=study.created,
        version=study.version,
        symbols=study.symbols,
        notes=study.notes,
    )


def render_page(
    title: str,
    sections: list[dict[str, Any]],
    *,
    created: str | None = None,
    version: str = __version__,
    symbols: list[str] | tuple[str, ...] = (),
    notes: list[str] | tuple[str, ...] = (),
) -> str:
    """A page of ``sections`` (``id``, ``title``, ``blocks`` of HTML) in the report layout."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("qt_backtest.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    template = environment.get_template("report.html.j2")
    return template.render(
        title=title,
        created=created or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=version,
        symbols=list(symbols),
        notes=list(notes),
        sections=sections,
    )


def write_log_report(parsed: Any, diff: Any, path: str | Path, source: str = "") -> Path:
    """An HTML page of a live-log replay: what was read, agreement per layer, mismatches."""
    kinds = pd.Series(dict(parsed.line_kinds), name="lines").rename_axis("message").to_frame()
    summary = diff.summary.copy()
    mismatches = diff.mismatches
    sections = [
        {
            "id": "journal",
            "title": "Journal",
            "blocks": [
                f"<p>{escape(source)}: {integer(len(parsed.records))} decision records, "
                f"{integer(parsed.skipped)} lines skipped (other services, truncated or "
                f"unknown), {integer(diff.unreplayable)} records without logged votes.</p>",
                table(kinds),
            ],
        },
        {
            "id": "agreement",
            "title": "Agreement per layer",
            "blocks": [
                "<p>Every replayable record recomputed from its logged votes and compared with "
                "what the engine logged, layer by layer.</p>",
                table(summary, table_id="agreement-table"),
            ],
        },
        {
            "id": "mismatches",
            "title": "Mismatches",
            "blocks": [
                f"<p>{integer(len(mismatches))} mismatching layer decisions"
                + (
                    f"; the first {min(len(mismatches), 200)} are listed."
                    if len(mismatches)
                    else "."
                )
                + "</p>",
                table(mismatches.head(200), index=False) if len(mismatches) else "",
            ],
        },
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_page("Live-log replay", sections))
    return path


def write_report(
    study: StudyResult,
    path: str | Path,
    *,
    max_trades: int = 50,
    heatmaps: list[tuple[str, str]] | None = None,
) -> Path:
    """Render and write the report (see :func:`render_report`); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    html_text = render_report(study, max_trades=max_trades, heatmaps=heatmaps)
    atomic_write_text(path, html_text)
    return path
