"""Indicator core vs TA-Lib: median wall time and ratio, plus first-call (compile) time.

Run: ``make bench`` (or ``python benchmarks/bench_indicators.py [--repeat N]
[--only rsi|macd|bbands] [--no-first-call]``).

For RSI(14), MACD(12,26,9) and BBANDS(20,2) on 1,000,000 bars x 1 column and 100,000 bars x 100
columns, the script times our kernels and TA-Lib in the same process after JIT warm-up, the
calls of the two alternating, and prints the medians and their ratio (ours / TA-Lib; below 1
means faster). Both sides allocate their outputs with numpy on every call. TA-Lib takes one
contiguous column at a time, so the 2-D baseline loops over columns; the 2-D cases run on a
row-major array (C) and on a column-major one (F, the layout of ``DataFrame.to_numpy()``). Our
side prepares its input as the array API does: MACD and BBANDS copy a row-major array to
column-major (inside the timing), RSI walks it in place by rows and writes row-major outputs.
The first-call section starts fresh interpreters that compile the three kernels with an empty
Numba cache (cold) and then again with the cache they filled (warm).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import talib
from _timing import paired_median_seconds

from qt_backtest.indicators import nb
from qt_backtest.indicators.api import as_kernel_input


def _random_walk(bars: int, columns: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.002, size=(bars, columns))
    return 100.0 * np.exp(np.cumsum(steps, axis=0))


def _ours(kernel, x, *params, outputs=1, row_major=False):
    """Our kernel as the array API calls it: input in the kernel's layout (a column-major copy
    of a row-major array unless ``row_major``), outputs allocated with numpy in that layout --
    as TA-Lib's wrapper allocates its outputs."""

    def run():
        values = as_kernel_input(x, row_major)
        return kernel(values, *params, *[np.empty_like(values) for _ in range(outputs)])

    return run


def _columns(function, x):
    """TA-Lib over every column of a 2-D array (it takes contiguous 1-D arrays only)."""
    return lambda: [function(np.ascontiguousarray(x[:, j])) for j in range(x.shape[1])]


def _cases(x1, x2_c, x2_f):
    cases = [
        ("RSI(14)", "1,000,000 x 1", _ours(nb.rsi_1d_nb, x1, 14), lambda: talib.RSI(x1, 14)),
        (
            "MACD(12,26,9)",
            "1,000,000 x 1",
            _ours(nb.macd_1d_nb, x1, 12, 26, 9, outputs=3),
            lambda: talib.MACD(x1, 12, 26, 9),
        ),
        (
            "BBANDS(20,2)",
            "1,000,000 x 1",
            _ours(nb.bbands_1d_nb, x1, 20, 2.0, 2.0, outputs=3),
            lambda: talib.BBANDS(x1, 20, 2.0, 2.0, 0),
        ),
    ]
    for label, x2 in (("100,000 x 100 C", x2_c), ("100,000 x 100 F", x2_f)):
        cases += [
            (
                "RSI(14)",
                label,
                _ours(nb.rsi_2d_nb, x2, 14, row_major=True),
                _columns(lambda c: talib.RSI(c, 14), x2),
            ),
            (
                "MACD(12,26,9)",
                label,
                _ours(nb.macd_2d_nb, x2, 12, 26, 9, outputs=3),
                _columns(lambda c: talib.MACD(c, 12, 26, 9), x2),
            ),
            (
                "BBANDS(20,2)",
                label,
                _ours(nb.bbands_2d_nb, x2, 20, 2.0, 2.0, outputs=3),
                _columns(lambda c: talib.BBANDS(c, 20, 2.0, 2.0, 0), x2),
            ),
        ]
    return cases


# ratio targets (ours / TA-Lib): per indicator on one column, and for every 2-D case
TARGETS = {"RSI(14)": 0.8, "MACD(12,26,9)": 1.0, "BBANDS(20,2)": 1.0}
TARGET_2D = 0.6

_FIRST_CALL = """
import time
start = time.perf_counter()
import numpy as np
from qt_backtest.indicators import nb
from qt_backtest.indicators.api import as_kernel_input
x1 = np.linspace(1.0, 2.0, 1000)
x2 = np.linspace(1.0, 2.0, 2000).reshape(1000, 2)
o1 = [np.empty(1000) for _ in range(3)]
o2 = [np.empty((1000, 2)) for _ in range(3)]
nb.rsi_1d_nb(x1, 14, o1[0]); nb.macd_1d_nb(x1, 12, 26, 9, *o1)
nb.bbands_1d_nb(x1, 20, 2.0, 2.0, *o1)
nb.rsi_2d_nb(x2, 14, o2[0]); nb.macd_2d_nb(x2, 12, 26, 9, *o2)
nb.bbands_2d_nb(x2, 20, 2.0, 2.0, *o2)
print(time.perf_counter() - start)
"""


def _first_call_seconds(cache_dir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    output = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=True
    )
    return float(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per case (median)")
    parser.add_argument(
        "--only",
        choices=["rsi", "macd", "bbands"],
        help="time one indicator only (its 1-D and 2-D cases)",
    )
    parser.add_argument(
        "--no-first-call", action="store_true", help="skip the first-call (compile) section"
    )
    args = parser.parse_args()

    import numba

    print(
        f"numpy {np.__version__}, numba {numba.__version__}, TA-Lib {talib.__version__}, "
        f"{os.cpu_count()} cores, numba threads {numba.get_num_threads()}"
    )
    x1 = _random_walk(1_000_000, 1)[:, 0].copy()
    x2_c = _random_walk(100_000, 100, seed=2)
    x2_f = np.asfortranarray(x2_c)
    print(
        "\n2-D layouts: C = row-major ndarray (MACD and BBANDS copy it to column-major once, "
        "inside the timing, RSI walks it by rows; TA-Lib's loop copies each column out); "
        "F = column-major, the layout of DataFrame.to_numpy()"
    )
    print(
        f"\n{'indicator':<15}{'shape':<16}{'ours ms':>10}{'TA-Lib ms':>11}{'ratio':>8}"
        f"{'target':>8}  verdict"
    )
    for name, shape, ours, theirs in _cases(x1, x2_c, x2_f):
        if args.only is not None and not name.lower().startswith(args.only):
            continue
        ours()  # JIT warm-up (and the cache load)
        theirs()
        ours_s, theirs_s = paired_median_seconds(ours, theirs, args.repeat)
        ratio = ours_s / theirs_s
        target = TARGETS.get(name, TARGET_2D) if shape.endswith("x 1") else TARGET_2D
        verdict = "meets" if ratio <= target else "misses"
        print(
            f"{name:<15}{shape:<16}{ours_s * 1e3:>10.2f}{theirs_s * 1e3:>11.2f}"
            f"{ratio:>8.2f}{target:>8.2f}  {verdict}"
        )

    if args.no_first_call:
        return
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = _first_call_seconds(cache_dir)
        warm = _first_call_seconds(cache_dir)
    print("\nfirst call of the six kernels in a fresh interpreter (import + compile or load):")
    print(f"  cold cache {cold:.2f} s, warm cache {warm:.2f} s")


if __name__ == "__main__":
    main()
