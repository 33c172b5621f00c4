"""Report figures: matplotlib (no pyplot state) rendered to inline SVG text.

Every function returns the ``<svg>`` element as a string, labelled with units, ready to be
placed in an HTML page that needs no network to open.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.typing import RcKeyType

from qt_backtest.report.format import escape

MAX_POINTS = 2500  # points per line drawn; a curve of more bars is thinned for display
COLORS = {
    "ensemble": "#4c72b0",
    "meta": "#8c8c8c",
    "meta_arbiter": "#dd8452",
    "arbiter_only": "#55a868",
    "buy_and_hold": "#222222",
}
DASHED = {"buy_and_hold"}  # references are drawn dashed
STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text stays text: smaller files, searchable labels
    "svg.hashsalt": "qt_backtest",  # element ids from content: the same figure, the same SVG
    # labels are data (symbols, parameter names), never TeX: a '$' in one is a dollar sign
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _svg(figure: Figure, label: str) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context(STYLE), warnings.catch_warnings():
        # a symbol or parameter name may hold characters the font lacks: drawn as boxes,
        # not worth a warning per figure
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # the title element is what screen readers and tests read
    return re.sub(
        r"<svg ",
        f'<svg role="img" aria-label="{escape(label)}" class="figure" ',
        svg,
        count=1,
    )


def _new(width: float = 7.5, height: float = 3.2, rows: int = 1, **grid) -> tuple[Figure, list]:
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(width, height), layout="constrained")
        axes = figure.subplots(rows, 1, squeeze=False, sharex=rows > 1, **grid)[:, 0]
    return figure, list(axes)


def _thin(series: pd.Series) -> pd.Series:
    if len(series) <= MAX_POINTS:
        return series
    step = int(np.ceil(len(series) / MAX_POINTS))
    keep = np.unique(np.append(np.arange(0, len(series), step), len(series) - 1))
    return series.iloc[keep]


def equity_and_drawdown(equity: pd.DataFrame, init_cash: float, title: str) -> str:
    """Equity (log scale, quote currency) and drawdown (%) of each run over time."""
    with matplotlib.rc_context(STYLE):
        figure, (top, bottom) = _new(7.5, 4.6, rows=2, height_ratios=[2, 1])
        for run in equity.columns:
            values = _thin(equity[run])
            color = COLORS.get(str(run))
            style = "--" if str(run) in DASHED else "-"
            # a closed-out account may end at zero equity, which a log scale cannot show
            shown = values.where(values > 0).to_numpy()
            top.plot(values.index, shown, label=str(run), color=color, lw=1.1, ls=style)
            peak = np.maximum.accumulate(np.maximum(equity[run].to_numpy(), init_cash))
            drawdown = _thin(pd.Series(equity[run].to_numpy() / peak - 1.0, index=equity.index))
            bottom.plot(drawdown.index, drawdown.to_numpy() * 100, color=color, lw=0.9, ls=style)
        top.set_yscale("log")
        top.set_ylabel("equity (quote currency, log scale)")
        top.set_title(title)
        top.legend(loc="upper left", frameon=False, ncol=len(equity.columns))
        bottom.set_ylabel("drawdown (%)")
        bottom.set_xlabel("time (UTC)")
    return _svg(figure, title)


def horizontal_bars(values: pd.Series, title: str, xlabel: str, percent: bool = True) -> str:
    """One bar per category (largest on top)."""
    values = values.sort_values()
    with matplotlib.rc_context(STYLE):
        figure, (axis,) = _new(7.5, 0.35 * len(values) + 1.0)
        shown = values.to_numpy() * (100 if percent else 1)
        axis.barh([str(k) for k in values.index], shown, color="#4c72b0")
        for y, value in enumerate(shown):
            axis.text(value, y, f" {value:,.1f}{' %' if percent else ''}", va="center", fontsize=8)
        axis.set_xlabel(xlabel)
        axis.set_title(title)
        axis.grid(axis="y", visible=False)
    return _svg(figure, title)


def histogram(values: np.ndarray, title: str, xlabel: str, bins: int = 40) -> str:
    """Distribution of ``values`` with the zero line and the mean marked."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    with matplotlib.rc_context(STYLE):
        figure, (axis,) = _new(7.5, 3.0)
        if len(values):
            axis.hist(values, bins=bins, color="#4c72b0", alpha=0.85)
            axis.axvline(0.0, color="black", lw=0.8)
            axis.axvline(values.mean(), color="#dd8452", lw=1.2, ls="--", label="mean")
            axis.legend(frameon=False)
        axis.set_xlabel(xlabel)
        axis.set_ylabel("count")
        axis.set_title(title)
    return _svg(figure, title)


def reliability(tables: dict[str, pd.DataFrame], title: str) -> str:
    """Hit rate against stated confidence per confidence bin; the diagonal is calibration."""
    with matplotlib.rc_context(STYLE):
        figure, (axis,) = _new(5.0, 4.0)
        axis.plot([0, 100], [0, 100], color="black", lw=0.8, ls=":", label="calibrated")
        for name, frame in tables.items():
            if len(frame):
                axis.plot(
                    frame["mean_confidence"] * 100,
                    frame["hit_rate"] * 100,
                    marker="o",
                    ms=3,
                    label=f"{name} ({int(frame['bars'].sum()):,} bars)",
                )
        axis.set_xlim(0, 100)
        axis.set_ylim(0, 100)
        axis.set_xlabel("stated confidence (%)")
        axis.set_ylabel("hit rate (%)")
        axis.set_title(title)
        axis.legend(frameon=False, fontsize=7)
    return _svg(figure, title)


def heatmap(
    pivot: pd.DataFrame,
    title: str,
    colorbar: str,
    marks: dict[str, tuple[object, object]] | None = None,
) -> str:
    """A metric over two parameters (rows: y, columns: x); ``marks`` label chosen cells."""
    with matplotlib.rc_context(STYLE):
        figure, (axis,) = _new(6.0, 0.45 * len(pivot.index) + 1.8)
        values = pivot.to_numpy(dtype=float)
        image = axis.imshow(values, aspect="auto", origin="lower", cmap="viridis")
        axis.set_xticks(
            range(len(pivot.columns)),
            [f"{c:g}" if isinstance(c, float) else str(c) for c in pivot.columns],
        )
        axis.set_yticks(
            range(len(pivot.index)),
            [f"{r:g}" if isinstance(r, float) else str(r) for r in pivot.index],
        )
        axis.set_xlabel(str(pivot.columns.name))
        axis.set_ylabel(str(pivot.index.name))
        axis.grid(False)
        finite = values[np.isfinite(values)]
        middle = (finite.max() + finite.min()) / 2 if len(finite) else 0.0
        for y in range(values.shape[0]):
            for x in range(values.shape[1]):
                if np.isfinite(values[y, x]):
                    axis.text(
                        x,
                        y,
                        f"{values[y, x]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if values[y, x] < middle else "black",
                    )
        for label, (x_value, y_value) in (marks or {}).items():
            if x_value in pivot.columns and y_value in pivot.index:
                x, y = pivot.columns.get_loc(x_value), pivot.index.get_loc(y_value)
                axis.add_patch(
                    Rectangle(
                        (x - 0.5, y - 0.5),
                        1,
                        1,
                        fill=False,
                        lw=2,
                        ec="#d62728" if label == "best" else "white",
                    )
                )
                axis.annotate(
                    label,
                    (x, y + 0.42),
                    ha="center",
                    va="top",
                    fontsize=6,
                    color="#d62728" if label == "best" else "white",
                )
        bar = figure.colorbar(image, ax=axis)
        bar.set_label(colorbar)
        axis.set_title(title)
    return _svg(figure, title)


def walk_forward(steps: pd.DataFrame, title: str, per_year: float) -> str:
    """In-sample vs out-of-sample annualised Sharpe of each walk-forward step."""
    with matplotlib.rc_context(STYLE):
        figure, (axis,) = _new(7.5, 3.0)
        x = np.arange(len(steps))
        scale = np.sqrt(per_year)
        axis.bar(x - 0.2, steps["in_sample_sharpe"] * scale, 0.4, label="in sample (chosen)")
        if "out_of_sample_sharpe" in steps:
            axis.bar(x + 0.2, steps["out_of_sample_sharpe"] * scale, 0.4, label="out of sample")
        axis.axhline(0, color="black", lw=0.8)
        axis.set_xticks(x, [str(b) for b in steps["test_block"]])
        axis.set_xlabel("out-of-sample time block")
        axis.set_ylabel("Sharpe ratio (annualised)")
        axis.set_title(title)
        axis.legend(frameon=False)
    return _svg(figure, title)


def forest(effects: pd.DataFrame, title: str, xlabel: str, confidence: float) -> str:
    """One row per effect: its estimate (dot) and interval (line), the zero line marked;
    intervals wholly above zero in green, wholly below in red.

    ``effects`` has the row labels as index and columns ``estimate``, ``low`` and ``high``.
    """
    rows = effects.iloc[::-1]  # the first row on top
    with matplotlib.rc_context(STYLE):
        figure, (axis,) = _new(7.5, 0.32 * len(rows) + 1.2)
        for y, (_, row) in enumerate(rows.iterrows()):
            color = "#8c8c8c"
            if row["low"] > 0:
                color = "#55a868"
            elif row["high"] < 0:
                color = "#c44e52"
            axis.plot([row["low"], row["high"]], [y, y], color=color, lw=2.2)
            axis.plot([row["estimate"]], [y], "o", color=color, ms=5)
        axis.axvline(0.0, color="black", lw=0.8)
        axis.set_yticks(range(len(rows)), [str(label) for label in rows.index])
        axis.set_xlabel(f"{xlabel} ({confidence:.0%} interval)")
        axis.set_title(title)
        axis.grid(axis="y", visible=False)
    return _svg(figure, title)


def sequence_bounds(timeline: pd.DataFrame, title: str, tolerance: float, confidence: float) -> str:
    """The mean paired outcome (%) and its anytime-valid interval over time, one panel per
    symbol, with the promote line (0) and the roll-back line (-tolerance).

    ``timeline`` has columns ``symbol``, ``day``, ``outcomes``, ``edge``, ``edge_low``,
    ``edge_high``.
    """
    symbols = list(dict.fromkeys(timeline["symbol"]))
    with matplotlib.rc_context(STYLE):
        figure, axes = _new(7.5, 1.9 * len(symbols) + 0.8, rows=len(symbols))
        for axis, symbol in zip(axes, symbols, strict=True):
            rows = timeline[timeline["symbol"] == symbol]
            days = pd.DatetimeIndex(rows["day"])
            axis.fill_between(
                days,
                rows["edge_low"].to_numpy(dtype=float) * 100,
                rows["edge_high"].to_numpy(dtype=float) * 100,
                color="#dd8452",
                alpha=0.3,
                lw=0,
                label=f"{confidence:.0%} confidence sequence",
            )
            axis.plot(days, rows["edge"].to_numpy(dtype=float) * 100, color="#dd8452", lw=1.1)
            axis.axhline(0.0, color="#1a7f37", lw=0.9, label="promote above")
            axis.axhline(
                -tolerance * 100, color="#cf222e", lw=0.9, ls="--", label="roll back below"
            )
            axis.set_ylabel(f"{symbol}\nmean edge (%)")
            # the first outcomes give intervals as wide as the clipping bound: the scale
            # follows the intervals from a tenth of the outcomes on, where verdicts fall
            most = rows["outcomes"].max()
            settled = rows[rows["outcomes"] >= min(max(30, most / 10), most)]
            bounds = settled[["edge_low", "edge_high"]].to_numpy(dtype=float) * 100
            if np.isfinite(bounds).any():
                reach = max(np.nanmax(np.abs(bounds)), tolerance * 100) * 1.15
                axis.set_ylim(-reach, reach)
        axes[0].set_title(title)
        axes[0].legend(loc="upper right", frameon=False, ncol=3, fontsize=8)
        axes[-1].set_xlabel("time (UTC)")
    return _svg(figure, title)


def rate_intervals(table: pd.DataFrame, title: str, confidence: float) -> str:
    """Each rate's anytime-valid interval (line) and estimate (dot) against its target band
    (shaded), in %.

    ``table`` has the rates as index and columns ``estimate``, ``low``, ``high``,
    ``target_low``, ``target_high``, ``verdict``.
    """
    rows = table.iloc[::-1]
    colors = {"inside": "#55a868", "outside": "#c44e52", "undecided": "#8c8c8c"}
    with matplotlib.rc_context(STYLE):
        figure, (axis,) = _new(7.5, 0.36 * len(rows) + 1.2)
        for y, (_, row) in enumerate(rows.iterrows()):
            axis.add_patch(
                Rectangle(
                    (row["target_low"] * 100, y - 0.35),
                    (row["target_high"] - row["target_low"]) * 100,
                    0.7,
                    color="#4c72b0",
                    alpha=0.15,
                    lw=0,
                )
            )
            color = colors.get(str(row["verdict"]), "#8c8c8c")
            axis.plot([row["low"] * 100, row["high"] * 100], [y, y], color=color, lw=2.2)
            if np.isfinite(row["estimate"]):
                axis.plot([row["estimate"] * 100], [y], "o", color=color, ms=5)
        axis.set_xlim(0, 100)
        axis.set_yticks(range(len(rows)), [str(label).replace("_", " ") for label in rows.index])
        axis.set_xlabel(f"rate (%): {confidence:.0%} confidence sequence, target band shaded")
        axis.set_title(title)
        axis.grid(axis="y", visible=False)
    return _svg(figure, title)
