"""Cut the test fixtures in ``tests/data`` from the full market data files.

Run once, from the project root, with the full files in a folder of your choice:

    python scripts/cut_test_data.py /path/to/full/data

Each output keeps the source rows exactly (the lines are copied, not parsed and rewritten) and
is gzip-compressed without a timestamp, so a re-run gives byte-identical files.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data"
# the first 10,000 five-minute bars of 2025 (about 35 days) and the hours that cover them
FIRST_BAR = "2025-01-01T00:00:00Z"
FIVE_MINUTE_BARS = 10_000
SLICES = {
    "BTCUSDT-5m.csv.gz": FIVE_MINUTE_BARS,
    "ETHUSDT-5m.csv.gz": FIVE_MINUTE_BARS,
    "SOLUSDT-5m.csv.gz": FIVE_MINUTE_BARS,
    "BNBUSDT-5m.csv.gz": FIVE_MINUTE_BARS,
    "SOLUSDT-1h.csv.gz": FIVE_MINUTE_BARS // 12 + 1,
    "BNBUSDT-1h.csv.gz": FIVE_MINUTE_BARS // 12 + 1,
}
WHOLE = ("GOOG-1d.csv.gz",)


def _write(path: Path, lines: list[str]) -> None:
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write("".join(lines).encode())


def main(source: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in SLICES.items():
        with gzip.open(source / name, "rt") as handle:
            header, *body = handle.readlines()
        start = next(i for i, line in enumerate(body) if line.startswith(FIRST_BAR))
        _write(OUT / name, [header, *body[start : start + rows]])
    for name in WHOLE:
        (OUT / name).write_bytes((source / name).read_bytes())
    for name in [*SLICES, *WHOLE]:
        digest = hashlib.sha256((source / name).read_bytes()).hexdigest()
        print(f"{name}: source sha256 {digest}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
