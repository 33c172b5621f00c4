"""Hierarchy replay: Numba kernel vs the per-step reference agents.

Run: ``python benchmarks/bench_replay.py [--bars N] [--sample N]``.

1,000,000 bars x 4 models go through ``meta_arbiter`` (production fidelity, default thresholds)
with synthetic votes -- correlated across models (escalating on about a fifth of the bars),
then uniformly random (a worst case for branch prediction) -- and random Arbiter inputs. The
kernel is timed after JIT warm-up (median of repeats), with fresh and with reused outputs, on
column-major inputs (the layout the pandas API builds) and on row-major ones. The reference
agents (``HierarchyEngine.step``) run on a subsample in the same process, and the script prints
bars per second for both and their ratio. The full pandas API (input checks and decoding to
categories and reason texts) is timed too, and so is the kernel's memory floor: its reads and
writes in the same chunks and threads, with no decisions.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from _timing import median_seconds
from numba import njit, prange

from qt_backtest.hierarchy import HierarchyConfig, HierarchyEngine
from qt_backtest.hierarchy.nb import CHUNK
from qt_backtest.hierarchy.replay import replay, replay_arrays
from qt_backtest.indicators import ARBITER_INPUT_COLUMNS

MODELS = ("xgb", "lgbm", "nhits", "patchtst")
NAMES = {-1: "SELL", 0: "HOLD", 1: "BUY"}


def _inputs(bars: int, seed: int = 0, agreement: float | None = 0.7):
    """Synthetic votes: each model repeats a latent per-bar action (HOLD half the time) with
    probability ``agreement``, else votes at random; ``None`` makes every vote random."""
    rng = np.random.default_rng(seed)
    if agreement is None:
        actions = rng.integers(-1, 2, (bars, 4)).astype(np.int8)
    else:
        latent = rng.choice(np.array([-1, 0, 0, 1], dtype=np.int8), size=(bars, 1))
        noise = rng.integers(-1, 2, (bars, 4)).astype(np.int8)
        actions = np.where(rng.uniform(0, 1, (bars, 4)) < agreement, latent, noise)
        actions = actions.astype(np.int8)
    confidences = rng.uniform(0.35, 0.95, (bars, 4))
    active = rng.uniform(0, 1, (bars, 4)) > 0.05
    scale = np.array([15.0, 0.05, 0.05, 0.35, 0.6, 0.015])
    center = np.array([50.0, 0.0, 0.0, 0.5, 1.0, 0.0])
    indicators = center + scale * rng.standard_normal((bars, 6))
    # column-major, the layout ``prediction_arrays`` and ``indicator_array`` build
    return tuple(np.asfortranarray(x) for x in (actions, confidences, active, indicators))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="bars for the reference")
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    config = HierarchyConfig(mode="meta_arbiter")
    for label, agreement in (("correlated votes", 0.7), ("uniformly random votes", None)):
        _run(args, config, label, agreement)


def _run(args, config, label, agreement) -> None:
    actions, confidences, active, indicators = _inputs(args.bars, agreement=agreement)

    replay_arrays(actions[:1000], confidences[:1000], active[:1000], indicators[:1000], config)
    kernel = median_seconds(
        lambda: replay_arrays(actions, confidences, active, indicators, config), args.repeat
    )
    outputs = replay_arrays(actions, confidences, active, indicators, config)
    reused = median_seconds(
        lambda: replay_arrays(actions, confidences, active, indicators, config, out=outputs),
        args.repeat,
    )
    row_major = tuple(np.ascontiguousarray(x) for x in (actions, confidences, active, indicators))
    replay_arrays(*row_major, config, out=outputs)
    reused_row_major = median_seconds(
        lambda: replay_arrays(*row_major, config, out=outputs), args.repeat
    )
    escalated = float(np.mean(outputs["meta_decision"] == 1))
    floor_args = (actions, confidences, active, indicators, *outputs.values())
    _memory_floor_nb(*floor_args)
    floor = median_seconds(lambda: _memory_floor_nb(*floor_args), args.repeat)

    frame = pd.DataFrame(index=pd.RangeIndex(args.bars))
    for k, model in enumerate(MODELS):
        names = pd.Categorical.from_codes(actions[:, k] + 1, ["SELL", "HOLD", "BUY"])
        frame[f"{model}_action"] = pd.Series(names).where(active[:, k])
        frame[f"{model}_confidence"] = np.where(active[:, k], confidences[:, k], np.nan)
    inputs = pd.DataFrame(indicators, columns=list(ARBITER_INPUT_COLUMNS))
    full = median_seconds(lambda: replay(frame, inputs, config), max(1, args.repeat // 2))

    engine = HierarchyEngine(config)
    sample = min(args.sample, args.bars)
    bars = [
        {
            m: {"action": NAMES[int(actions[i, k])], "confidence": float(confidences[i, k])}
            for k, m in enumerate(MODELS)
            if active[i, k]
        }
        for i in range(sample)
    ]
    rows = [dict(zip(ARBITER_INPUT_COLUMNS, indicators[i], strict=True)) for i in range(sample)]
    start = time.perf_counter()
    for bar, row in zip(bars, rows, strict=True):
        engine.step(bar, row)
    reference = (time.perf_counter() - start) / sample * args.bars

    print(
        f"\n{args.bars:,} bars x 4 models, meta_arbiter, {label}, escalation rate {escalated:.1%}"
    )
    print(
        f"  kernel            {kernel * 1e3:9.1f} ms   {args.bars / kernel:14,.0f} bars/s"
        "  (allocating its outputs)"
    )
    print(
        f"  kernel, reused    {reused * 1e3:9.1f} ms   {args.bars / reused:14,.0f} bars/s"
        "  (outputs reused, as in repeated replays)"
    )
    print(
        f"  kernel, row-major {reused_row_major * 1e3:9.1f} ms   "
        f"{args.bars / reused_row_major:14,.0f} bars/s  (outputs reused, C-ordered inputs)"
    )
    print(
        f"  pandas API        {full * 1e3:9.1f} ms   {args.bars / full:14,.0f} bars/s"
        "  (input checks + decoding)"
    )
    print(
        f"  reference agents  {reference * 1e3:9.1f} ms   {args.bars / reference:14,.0f} bars/s"
        f"  (extrapolated from {sample:,} bars)"
    )
    print(
        f"  memory floor      {floor * 1e3:9.1f} ms   (read the inputs, write the 20 output "
        "columns, decide nothing: same layout and threads)"
    )
    print(
        f"  speed ratio to the reference: kernel {reference / kernel:,.0f}x, reused outputs "
        f"{reference / reused:,.0f}x (target >= 1,000x), pandas API {reference / full:,.0f}x; "
        f"the memory floor alone is {reference / floor:,.0f}x"
    )


@njit(parallel=True, cache=True)
def _memory_floor_nb(
    actions,
    confidences,
    active,
    indicators,
    o0,
    o1,
    o2,
    o3,
    o4,
    o5,
    o6,
    o7,
    o8,
    o9,
    o10,
    o11,
    o12,
    o13,
    o14,
    o15,
    o16,
    o17,
    o18,
    o19,
):
    """The replay's memory traffic without its decisions: every input read, every output
    written, in the kernel's chunks and column order."""
    bars = actions.shape[0]
    chunks = (bars + CHUNK - 1) // CHUNK
    for chunk in prange(chunks):
        first, last = chunk * CHUNK, min(bars, (chunk + 1) * CHUNK)
        total = np.zeros(last - first)
        for m in range(actions.shape[1]):
            votes = actions[first:last, m]
            values = confidences[first:last, m]
            on = active[first:last, m]
            for j in range(last - first):
                total[j] += votes[j] + values[j] + on[j]
        for k in range(indicators.shape[1]):
            column = indicators[first:last, k]
            for j in range(last - first):
                total[j] += column[j]
        code = total > 0.0
        for out in (o0, o2, o3, o4, o5, o6, o10, o13, o15, o16, o18):
            out[first:last] = code
        for out in (o1, o7, o8, o9, o11, o12, o17):
            out[first:last] = total
        o14[first:last] = code
        o19[first:last] = code


if __name__ == "__main__":
    main()
