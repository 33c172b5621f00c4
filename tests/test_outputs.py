"""Outputs are atomic and caches distrust what they read: corrupt sweep chunks are recomputed,
concurrent writers never collide, and a failed write leaves nothing at the target."""

from __future__ import annotations

import threading
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
from sweep_fixtures import GRID_AXES, synthetic_market

from qt_backtest.atomic import atomic_write, atomic_write_text
from qt_backtest.sweep import sweep


@pytest.fixture(scope="module")
def market():
    return synthetic_market(600, seed=4)


def run(market, cache):
    bars, votes, inputs = market
    # every combination simulated: five chunks of two
    return sweep(
        bars, votes, inputs, GRID_AXES, chunk_size=2, blocks=4, cache_dir=cache, dedup=False
    )


def corrupt_truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corrupt_empty(path):
    path.write_bytes(b"")


def _rewrite(path, change):
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files}
    np.savez(path.with_suffix(""), **change(arrays))
    path.with_suffix("").with_suffix(".npz").replace(path)


def corrupt_shape(path):
    _rewrite(path, lambda a: a | {"stats": a["stats"][:1], "blocks": a["blocks"][:1]})


def corrupt_values(path):
    _rewrite(path, lambda a: a | {"stats": a["stats"] + 1.0})


def corrupt_periods(path):
    _rewrite(path, lambda a: a | {"periods": a["periods"] * 2.0})


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (corrupt_truncated, "unreadable"),
        (corrupt_empty, "unreadable"),
        (corrupt_shape, "shape"),
        (corrupt_values, "checksum mismatch"),
        (corrupt_periods, "checksum mismatch"),
    ],
)
def test_a_bad_sweep_chunk_is_warned_about_and_recomputed(tmp_path, market, corrupt, problem):
    fresh = run(market, tmp_path)
    chunks = sorted(tmp_path.glob("chunk-*.npz"))
    assert len(chunks) == 5
    corrupt(chunks[2])
    with pytest.warns(UserWarning, match=problem):
        again = run(market, tmp_path)
    assert again.computed_chunks == 1 and again.loaded_chunks == 4
    pd.testing.assert_frame_equal(again.frame, fresh.frame, check_exact=True)
    np.testing.assert_array_equal(again.periods["series"], fresh.periods["series"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = run(market, tmp_path)  # the recomputed chunk was stored whole
    assert third.loaded_chunks == 5
    assert not list(tmp_path.glob(".*.tmp*"))


def test_a_failed_write_leaves_nothing_at_the_target(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("the previous report")

    def half_then_fail(temporary):
        temporary.write_text("half of a rep")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="cannot write .*report.html: No space left on device"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_concurrent_writers_of_one_path_never_collide(tmp_path):
    target = tmp_path / "votes.parquet"
    errors = []
    payloads = [f"writer {k} ".ljust(200_000, str(k % 10)) for k in range(12)]

    def write(text):
        try:
            atomic_write_text(target, text)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(text,)) for text in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_text() in payloads  # one writer's whole file
    assert [p.name for p in tmp_path.iterdir()] == ["votes.parquet"]


def test_a_zip_error_is_an_unreadable_chunk_not_a_crash(tmp_path, market):
    run(market, tmp_path)
    chunk = sorted(tmp_path.glob("chunk-*.npz"))[0]
    with zipfile.ZipFile(chunk, "w") as archive:
        archive.writestr("stats.npy", b"not an array")  # a zip whose member is garbage
    with pytest.warns(UserWarning, match="sweep cache chunk"):
        again = run(market, tmp_path)
    assert again.computed_chunks >= 1
