"""Realistic live-engine journals, generated from the reference engine and the H-LOG-2 formats:
both ENSEMBLE forms, lines with and without the Python logging prefix, with and without emoji,
tags with and without a space, interleaved symbols, other services' lines, garbage and
truncated copies of real lines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qt_backtest.hierarchy import HierarchyConfig, HierarchyEngine
from qt_backtest.hierarchy.livelog import _message, _timestamp, format_record
from qt_backtest.indicators import ARBITER_INPUT_COLUMNS

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
MODELS = ("xgb", "lgbm", "nhits", "patchtst")
OTHER_SERVICES = (
    "Feb 06 12:00:01 vps sshd[4410]: Accepted publickey for deploy from 10.0.0.8 port 52814",
    "Feb 06 12:00:02 vps systemd[1]: Started Session 118 of user deploy.",
    "Feb 06 12:00:02 vps python[812]: 2026-02-06 12:00:02,881 - ai_engine.data_feed - INFO - "
    "Fetched 500 candles for BTCUSDT",
    "Feb 06 12:00:04 vps python[812]: Traceback (most recent call last):",
    "\x00\x13garbage \ufffd\ufffd [Arbiter",
    "-- Boot 5d3f0c1b2a -- ",
)


def _votes(rng):
    latent = rng.choice(["BUY", "SELL", "HOLD", "HOLD"])
    votes = {}
    for model in MODELS:
        if rng.uniform() < 0.08:
            continue  # the model has no prediction this bar
        action = latent if rng.uniform() < 0.65 else rng.choice(["BUY", "SELL", "HOLD"])
        votes[model] = (str(action), round(float(rng.uniform(0.40, 0.95)), 2))
    return votes


def _indicators(rng):
    return {
        "rsi": float(rng.uniform(10, 90)),
        "macd": float(rng.normal(0, 0.05)),
        "macd_signal": float(rng.normal(0, 0.05)),
        "bb_position": float(rng.uniform(-0.2, 1.2)),
        "volume_trend": float(rng.lognormal(0, 0.4)),
        "momentum": float(rng.normal(0, 0.02)),
    }


def _truncated(line, rng):
    """A cut copy of ``line`` that the parser must reject (cuts that still parse are redrawn)."""
    for _ in range(20):
        cut = line[: int(rng.integers(10, max(11, len(line) - 1)))]
        if _message(_timestamp(cut, 2026)[1]) is None:
            return cut
    return None


def make_journal(lines_wanted=10_000, seed=0, config=None):
    """Return (journal lines, indicators by (symbol, time), per-cycle inputs, noise count)."""
    rng = np.random.default_rng(seed)
    config = config or HierarchyConfig()
    engine = HierarchyEngine(config)
    journal, noise = [], 0
    inputs = []
    time = pd.Timestamp("2026-02-06 12:00:00", tz="UTC")
    while len(journal) < lines_wanted:
        pending = []
        for symbol in rng.permutation(SYMBOLS):
            votes = _votes(rng)
            indicators = _indicators(rng)
            bar = {m: {"action": a, "confidence": c} for m, (a, c) in votes.items()}
            record = engine.step(bar, indicators)
            record["votes"] = votes
            lines = format_record(
                str(symbol),
                time,
                record,
                emoji=bool(rng.uniform() < 0.7),
                python_prefix=bool(rng.uniform() < 0.7),
                old_ensemble_form=bool(rng.uniform() < 0.2),
                space_after_tag=bool(rng.uniform() < 0.8),
                arbiter_threshold=config.arbiter.arbiter_threshold,
            )
            pending.append(lines)
            inputs.append(
                {"symbol": str(symbol), "time": time, "bar": bar, "indicators": indicators}
            )
        # interleave the symbols' lines, keeping each symbol's own order
        while any(pending):
            choices = [k for k, lines in enumerate(pending) if lines]
            k = int(rng.choice(choices))
            line = pending[k].pop(0)
            journal.append(line)
            roll = rng.uniform()
            if roll < 0.04:
                journal.append(str(rng.choice(OTHER_SERVICES)))
                noise += 1
            elif roll < 0.07:
                cut = _truncated(line, rng)
                if cut is not None:
                    journal.append(cut)
                    noise += 1
        time += pd.Timedelta(hours=1)
    indicators = pd.DataFrame(
        [item["indicators"] for item in inputs],
        index=pd.MultiIndex.from_tuples([(i["symbol"], i["time"]) for i in inputs]),
        columns=list(ARBITER_INPUT_COLUMNS),
    )
    return journal, indicators, inputs, noise
