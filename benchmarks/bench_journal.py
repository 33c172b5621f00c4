"""Incremental journal reading: ``read_new_lines`` + ``JournalReader.feed`` vs the old parser.

Run: ``make bench`` (or ``python benchmarks/bench_journal.py [--lines N] [--symbols N]``).

A journal of 1,000,000 lines is written with ``format_record`` in every live format (H-LOG-1,
H-LOG-2: both ENSEMBLE forms, with and without the logging prefix, emoji and the space after
the tag), five symbols whose lines interleave within each decision cycle, and about 5 % noise
(other services' lines and truncated copies of engine lines). The decisions come from the
reference engine on synthetic votes (a pool of cycles reused with advancing times: stepping
the engine a million times would take longer than everything measured).

Timed, as the rollout monitor reads a file: ``read_new_lines`` in batches of
``BATCH_BYTES`` from the start to the end, each batch fed to one ``JournalReader``
(target: the million lines in at most 10 s), and its two halves alone. Then
``parse_live_log`` on the whole file (the same reader plus the records frame), and the parser
as it was before the incremental reader (loaded from git history) on the first
``--baseline-lines`` lines, with the new reader on the same lines for the ratio. The load
average is printed before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
from _synthetic import market

from qt_backtest.hierarchy import HierarchyConfig, HierarchyEngine
from qt_backtest.hierarchy.livelog import JournalReader, format_record, parse_live_log
from qt_backtest.monitor.journal import BATCH_BYTES, read_new_lines

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT")
MODELS = ("xgb", "lgbm", "nhits", "patchtst")
NOISE = (
    "Feb 06 12:00:01 vps sshd[4410]: Accepted publickey for deploy from 10.0.0.8 port 52814",
    "Feb 06 12:00:02 vps systemd[1]: Started Session 118 of user deploy.",
    "Feb 06 12:00:02 vps python[812]: 2026-02-06 12:00:02,881 - ai_engine.data_feed - INFO - "
    "Fetched 500 candles for BTCUSDT",
    "Feb 06 12:00:04 vps python[812]: Traceback (most recent call last):",
)
SOURCE = "qt_backtest/hierarchy/livelog.py"
TARGET_SECONDS = 10.0


def _engine_pool(size: int, seed: int) -> list[dict]:
    """``size`` reference-engine records (with their votes) on synthetic bars."""
    _, votes, indicators = market(size, seed=seed)
    rng = np.random.default_rng(seed)
    engine = HierarchyEngine(HierarchyConfig())
    pool = []
    for i in range(size):
        bar = {
            model: {
                "action": str(votes[f"{model}_action"].iat[i]),
                "confidence": round(float(votes[f"{model}_confidence"].iat[i]), 2),
            }
            for model in MODELS
            if rng.uniform() > 0.05  # a model without a prediction this bar
        }
        record = engine.step(bar, indicators.iloc[i].to_dict())
        record["votes"] = {m: (v["action"], v["confidence"]) for m, v in bar.items()}
        pool.append(record)
    return pool


def write_journal(path: Path, lines_wanted: int, symbols: int, seed: int = 0) -> int:
    """Write a journal of at least ``lines_wanted`` lines; returns the lines written."""
    rng = np.random.default_rng(seed)
    pool = _engine_pool(4000, seed)
    names = SYMBOLS[:symbols]
    start = pd.Timestamp("2026-02-06 12:00:00", tz="UTC")
    written = cycle = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < lines_wanted:
            options = rng.uniform(size=(len(names), 4)) < (0.7, 0.7, 0.2, 0.8)
            pending = [
                format_record(
                    symbol,
                    start + pd.Timedelta(minutes=cycle, milliseconds=37 * k + 3),
                    pool[(cycle * len(names) + k) % len(pool)],
                    emoji=bool(options[k, 0]),
                    python_prefix=bool(options[k, 1]),
                    old_ensemble_form=bool(options[k, 2]),
                    space_after_tag=bool(options[k, 3]),
                )
                for k, symbol in enumerate(names)
            ]
            # a random interleaving that keeps each symbol's own order
            owners = rng.permutation(np.repeat(np.arange(len(names)), [len(p) for p in pending]))
            rolls = rng.uniform(size=len(owners))
            cuts = rng.integers(10, 60, size=len(owners))
            next_line = [0] * len(names)
            batch = []
            for owner, roll, cut in zip(owners, rolls, cuts, strict=True):
                line = pending[owner][next_line[owner]]
                next_line[owner] += 1
                batch.append(line)
                if roll < 0.03:
                    batch.append(NOISE[int(roll * 1000) % len(NOISE)])
                elif roll < 0.05:
                    batch.append(line[: min(cut, len(line) - 5)])  # a truncated copy
            out.write("\n".join(batch) + "\n")
            written += len(batch)
            cycle += 1
    return written


def read_incrementally(path: Path, year: int) -> tuple[int, int, float, float]:
    """Read the file as the monitor does; (lines, records, seconds reading, seconds feeding)."""
    reader = JournalReader(year)
    position = None
    lines_read = records = 0
    reading = feeding = 0.0
    while True:
        started = time.perf_counter()
        lines, position = read_new_lines(path, position, max_bytes=BATCH_BYTES)
        fed = time.perf_counter()
        if not lines:
            reading += fed - started
            break
        records += len(reader.feed(lines))
        reading += fed - started
        feeding += time.perf_counter() - fed
        lines_read += len(lines)
    records += len(reader.flush())
    return lines_read, records, reading, feeding


def _parser_before(root: Path) -> tuple[ModuleType | None, str]:
    """The live-log module as it was before the incremental reader, from git history."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        )
        return result.stdout

    try:
        added = git("log", "--reverse", "--format=%H", "-S", "class JournalReader", "--", SOURCE)
        commit = added.split()[0] + "^" if added.split() else "HEAD"
        source = git("show", f"{commit}:{SOURCE}")
        label = git("rev-parse", "--short", commit).strip()
    except (OSError, subprocess.CalledProcessError, IndexError) as error:
        return None, f"not available ({error})"
    if "class JournalReader" in source:
        return None, "not available (no revision before the reader)"
    spec = importlib.util.spec_from_loader("livelog_before", loader=None)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{label}:{SOURCE}", "exec"), module.__dict__)
    return module, f"commit {label}"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=5, choices=range(1, len(SYMBOLS) + 1))
    parser.add_argument("--baseline-lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="incremental reads (median)")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "journal.log"
        started = time.perf_counter()
        total = write_journal(path, args.lines, args.symbols)
        size = path.stat().st_size
        print(
            f"journal: {total:,} lines, {size / 1e6:,.0f} MB, {args.symbols} symbols "
            f"(written in {time.perf_counter() - started:.1f} s)"
        )
        print(f"before: {_load()}")

        runs = [read_incrementally(path, 2026) for _ in range(args.repeat)]
        runs.sort(key=lambda run: run[2] + run[3])
        lines, records, reading, feeding = runs[len(runs) // 2]
        assert lines == total, (lines, total)
        elapsed = reading + feeding
        verdict = "meets" if elapsed <= TARGET_SECONDS else "misses"
        print(f"\nincremental (read_new_lines in {BATCH_BYTES >> 20} MiB batches + feed):")
        print(
            f"  total          {elapsed:7.2f} s   {lines / elapsed:12,.0f} lines/s"
            f"   ({records:,} records; target <= {TARGET_SECONDS:.0f} s: {verdict})"
        )
        print(f"  read_new_lines {reading:7.2f} s   {lines / reading:12,.0f} lines/s")
        print(f"  feed           {feeding:7.2f} s   {lines / feeding:12,.0f} lines/s")

        started = time.perf_counter()
        parsed = parse_live_log(path, year=2026)
        whole = time.perf_counter() - started
        assert len(parsed.records) == records
        print(
            f"  parse_live_log {whole:7.2f} s   {lines / whole:12,.0f} lines/s"
            "   (whole file, text mode, and the records frame)"
        )

        sample = path.read_text(encoding="utf-8").splitlines()[: args.baseline_lines]
    before, label = _parser_before(root)
    print(f"\nparser before the incremental reader: {label}")
    if before is not None:
        started = time.perf_counter()
        old = before.parse_live_log(sample, year=2026)
        old_seconds = time.perf_counter() - started
        reader = JournalReader(2026)
        started = time.perf_counter()
        new_records = reader.feed(sample) + reader.flush()
        new_seconds = time.perf_counter() - started
        assert len(new_records) == len(old.records) and reader.skipped == old.skipped
        print(
            f"  on the first {len(sample):,} lines: before {old_seconds:.2f} s "
            f"({len(sample) / old_seconds:,.0f} lines/s), feed now {new_seconds:.2f} s "
            f"({len(sample) / new_seconds:,.0f} lines/s): {old_seconds / new_seconds:.1f}x faster"
        )
        print(
            f"  extrapolated to {lines:,} lines: before {old_seconds / len(sample) * lines:.1f} s"
        )
    print(f"\nafter: {_load()}")


if __name__ == "__main__":
    main()
