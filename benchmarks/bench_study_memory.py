"""Peak memory of a study (what ``qt-backtest run`` computes) on a long synthetic history.

Run: ``python benchmarks/bench_study_memory.py [--bars 1000000] [--overrides 200]``.

Builds hourly bars, four models' votes and the Arbiter's inputs, then runs
:func:`qt_backtest.report.run_study`: the comparison of the rollout stages and buy-and-hold,
the value of ``--overrides`` Arbiter overrides by counterfactual, reliability and skill. Prints
the wall time and the peak resident memory of the process (data included).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import market

from qt_backtest.report import run_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--overrides", type=int, default=200)
    args = parser.parse_args()
    bars, votes, _ = market(args.bars)
    data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    started = time.perf_counter()
    study = run_study({"SYN": bars}, {"SYN": votes}, override_limit=args.overrides)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"run_study on {len(bars):,} bars: {elapsed:.1f} s, {len(study.overrides)} overrides "
        f"valued; peak resident memory {peak:.2f} GiB ({data:.2f} GiB after building the data)"
    )


if __name__ == "__main__":
    main()
