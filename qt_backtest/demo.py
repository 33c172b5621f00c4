"""The main job, ``make demo``: load the bundled sample and summarise its data and indicators.

Run with ``python -m qt_backtest.demo``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from qt_backtest.data import gap_report, list_samples, load_sample
from qt_backtest.indicators import ARBITER_INPUT_COLUMNS, arbiter_inputs, streaming


def _data_summary(name: str, frame: pd.DataFrame) -> list[str]:
    gaps = gap_report(frame)
    returns = np.log(frame["close"]).diff().dropna()
    return [
        f"{name}: {len(frame):,} {frame.attrs['interval']} bars, "
        f"{frame.index[0]:%Y-%m-%d %H:%M} .. {frame.index[-1]:%Y-%m-%d %H:%M} UTC",
        f"  gaps: {gaps}",
        f"  close: first {frame['close'].iloc[0]:,.2f}, last {frame['close'].iloc[-1]:,.2f}, "
        f"min {frame['close'].min():,.2f}, max {frame['close'].max():,.2f}",
        f"  zero-volume bars: {int((frame['volume'] == 0).sum())}, "
        f"{frame.attrs['interval']} log-return std {returns.std():.4%}",
    ]


def _indicator_summary(inputs: pd.DataFrame) -> list[str]:
    table = inputs.describe(percentiles=[0.05, 0.5, 0.95]).T[["mean", "5%", "50%", "95%"]]
    last = inputs.iloc[-1]
    lines = ["  Arbiter inputs (SPEC §6), distribution over all bars and the latest bar:"]
    lines.append(f"    {'input':<13}{'mean':>12}{'5%':>12}{'median':>12}{'95%':>12}{'latest':>12}")
    for column in ARBITER_INPUT_COLUMNS:
        row = table.loc[column]
        lines.append(
            f"    {column:<13}{row['mean']:>12.4f}{row['5%']:>12.4f}{row['50%']:>12.4f}"
            f"{row['95%']:>12.4f}{last[column]:>12.4f}"
        )
    rsi = inputs["rsi"]
    lines.append(
        f"    RSI < 30 on {float((rsi < 30).mean()):.1%} of bars, RSI > 70 on "
        f"{float((rsi > 70).mean()):.1%}"
    )
    return lines


def _streaming_check(frame: pd.DataFrame, inputs: pd.DataFrame, bars: int = 500) -> str:
    rsi = streaming.RSI()
    values = np.array([rsi.update(close) for close in frame["close"].iloc[:bars]])
    same = np.array_equal(values, inputs["rsi"].iloc[:bars].to_numpy(), equal_nan=True)
    return f"  streaming RSI over the first {bars} bars equals the batch kernel: {same}"


def main() -> None:
    start = time.perf_counter()
    print("qt_backtest demo: bundled sample data and the indicator core\n")
    for name in list_samples():
        frame = load_sample(name)
        inputs = arbiter_inputs(frame)
        for line in _data_summary(name, frame) + _indicator_summary(inputs):
            print(line)
        print(_streaming_check(frame, inputs))
        print()
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
