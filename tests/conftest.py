"""Shared fixtures: real market data from the checkout (data/, tests/data/), synthetic series."""

from __future__ import annotations

import os
from pathlib import Path

# Compiled kernels are cached inside the project; set before numba is first imported.
# A relative setting is made absolute: tests that change the working directory must not start
# a second, cold cache there.
os.environ["NUMBA_CACHE_DIR"] = str(
    Path(
        os.environ.get("NUMBA_CACHE_DIR", Path(__file__).resolve().parents[1] / ".numba_cache")
    ).resolve()
)

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

from qt_backtest.data import load_ohlcv

# CI explores the same examples on every run, so that a result never depends on the draw;
# locally every run draws new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]

# Tests left out of `make check` (the edit loop, `pytest -m "not slow"`); `make test` and CI run
# everything. A module, or a test of a module (without its parameters), and why it is slow.
SLOW_TESTS = {
    "test_notebooks.py": "starts Jupyter kernels",
    "test_neural.py": "trains PyTorch models",
    "test_demo.py": "runs the demo end to end",
    "test_report_safety.py": "renders reports of hostile inputs in headless Chromium",
    "test_report.py::test_the_report_renders_in_headless_chromium": "headless Chromium",
    "test_monitor.py::test_the_page_escapes_what_it_is_given_and_renders_in_chromium": (
        "headless Chromium"
    ),
    "test_report.py::test_every_section_and_figure_is_in_the_page": "builds a full study",
    "test_report.py::test_heatmaps_of_chosen_parameter_pairs": "builds a full study",
    "test_report.py::test_a_saved_study_renders_the_same": "builds a full study",
    "test_cli.py::test_run_writes_the_report_and_saves_the_study": "a full run and report",
    "test_cli.py::test_sweep_writes_results_and_report": "a full sweep and report",
    "test_cli.py::test_compare_sets_two_saved_studies_side_by_side": "two full runs",
    "test_cli.py::test_run_trains_walk_forward_from_the_settings_file": "trains models",
    "test_cli.py::test_run_names_model_slots_without_votes": "a full run",
    "test_cli.py::test_predictions_shifted_by_a_bar_or_partial_are_warned_with_figures": (
        "full runs"
    ),
    "test_cli.py::test_the_installed_entry_point_answers_help": "a fresh interpreter",
    "test_sweep.py::test_dask_cluster_gives_the_local_results": "starts a Dask cluster",
    "test_walk_forward_parallel.py::test_neural_folds_in_processes_give_the_serial_votes_bit_for_bit": (
        "spawns processes that import PyTorch"
    ),
    "test_sweep.py::test_resume_after_a_killed_run_computes_only_the_missing_chunks": (
        "kills a sweep in a subprocess"
    ),
    "test_ruin.py::test_sweep_rows_equal_single_runs_with_close_outs": "many simulations",
    "test_ruin.py::test_batched_runs_close_out_each_column_as_its_own_run": "many simulations",
    "test_sweep.py::test_kernel_equals_single_runs_on_the_sample": "a sweep against single runs",
    "test_cli.py::test_outputs_in_the_settings_file_resolve_against_it": "full runs",
    "test_cli.py::test_an_unwritable_output_is_a_one_line_error": "a full run",
    "test_backtest.py::test_no_lookahead_in_execution": "perturbs and re-simulates many times",
    "test_environment.py::test_vectorbt_imports_and_simulates_without_breaking_on_numba_warnings": (
        "a fresh interpreter importing vectorbt"
    ),
    "test_monitor_outcomes.py::test_close_outs_are_followed_as_in_the_attribution": (
        "compiles vectorbt's flexible simulation, about 10 s"
    ),
    "test_livelog.py::test_parser_never_crashes_on_garbage": "a long fuzzing run",
    "test_livelog.py::test_mutated_lines_never_raise_and_stay_fast": "a long fuzzing run",
    "test_inference.py::test_paired_interval_covers_a_known_sharpe_difference": (
        "a coverage simulation"
    ),
    "test_inference.py::test_bootstrap_test_holds_its_size_on_dependent_fat_tailed_returns": (
        "a size simulation"
    ),
    "test_inference.py::test_hac_test_has_power_against_a_stated_difference": (
        "a power simulation"
    ),
    "test_inference.py::test_rollout_power_gives_the_length_that_detects_the_drop_four_times_in_five": (
        "a power simulation"
    ),
}
# fixtures that make any test using them slow: a conftest fixture, or module::fixture
SLOW_FIXTURES = {
    "random_walk_1m": "a million bars",
    "test_report.py::study": "builds a full study with a sweep",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.name
        test = f"{module}::{item.originalname}"
        reasons = [SLOW_TESTS.get(module), SLOW_TESTS.get(test)]
        reasons += [
            SLOW_FIXTURES.get(name) or SLOW_FIXTURES.get(f"{module}::{name}")
            for name in item.fixturenames
        ]
        if any(reasons):
            item.add_marker(pytest.mark.slow(reason=next(filter(None, reasons))))


# the bundled sample first (whole files), then the test fixtures (slices, see their PROVENANCE)
DATA_FOLDERS = (ROOT / "data", ROOT / "tests" / "data")


def data_file(name: str) -> Path:
    """The market data file ``name`` from the checkout; nothing outside it is read."""
    for folder in DATA_FOLDERS:
        path = folder / name
        if path.exists():
            return path
    raise FileNotFoundError(f"no market data file {name!r} in {', '.join(map(str, DATA_FOLDERS))}")


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    return load_ohlcv(data_file("BTCUSDT-1h.csv.gz"))


@pytest.fixture(scope="session")
def eth_5m() -> pd.DataFrame:
    return load_ohlcv(data_file("ETHUSDT-5m.csv.gz"))


def random_walk_ohlcv(
    bars: int, seed: int, start_price: float = 100.0, volatility: float = 0.002
) -> dict[str, np.ndarray]:
    """A geometric random walk with consistent OHLCV bars (log-step sd ``volatility``)."""
    rng = np.random.default_rng(seed)
    close = start_price * np.exp(np.cumsum(rng.normal(0.0, volatility, bars)))
    open_ = np.concatenate([[start_price], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.001, bars)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread * rng.uniform(0, 1, bars)
    volume = rng.lognormal(3.0, 1.0, bars)
    volume[rng.uniform(0, 1, bars) < 0.001] = 0.0
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


@pytest.fixture(scope="session")
def random_walk_1m() -> dict[str, np.ndarray]:
    return random_walk_ohlcv(1_000_000, seed=7)
