"""Simulating each distinct order stream once never changes a result (S-DUP-1 to S-DUP-4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sweep_fixtures import synthetic_market

from qt_backtest.hierarchy import MetaUncertaintyModel
from qt_backtest.sweep import Grid, dedup, nb, sweep
from qt_backtest.sweep.dedup import (
    _largest_at_or_below,
    _smallest_at_or_above,
    decision_keys,
    first_of_class,
)
from qt_backtest.sweep.run import _kernel_inputs, decision_pass, pack_grid, symbol_inputs
from qt_backtest.sweep.streams_nb import streams_nb


@pytest.fixture(scope="module")
def market():
    return synthetic_market(700, seed=3)


@pytest.fixture(scope="module")
def observed(market):
    """The values the thresholds are compared with on ``market``, to draw thresholds on and
    next to them (where an off-by-one comparison would show)."""
    bars, votes, inputs = market
    combinations = pack_grid(Grid.from_records([{}]))
    bar_inputs = symbol_inputs("series", bars, votes, inputs, combinations).bar_inputs
    share = bar_inputs[:, nb.B_SHARE]
    values = {
        "share": share,
        "disagreement": 1.0 - share,
        "fallback": bar_inputs[:, nb.B_FALLBACK],
        "base": bar_inputs[:, nb.B_BASE_CONFIDENCE],
        "verdict": bar_inputs[:, nb.B_VERDICT_CONFIDENCE],
    }
    return {name: np.unique(v[~np.isnan(v)]) for name, v in values.items()}


def near(values: np.ndarray, low: float, high: float) -> st.SearchStrategy[float]:
    """A compared value itself, one ulp either side of it, or any number in [low, high]."""
    inside = values[(values >= low) & (values <= high)]
    exact = st.sampled_from(list(inside)) if len(inside) else st.floats(low, high)
    return st.one_of(
        exact,
        exact.map(lambda v: float(min(np.nextafter(v, np.inf), high))),
        exact.map(lambda v: float(max(np.nextafter(v, -np.inf), low))),
        st.floats(low, high),
    )


@st.composite
def threshold_grid(draw, observed):
    """A few combinations varying thresholds, the mode and the position rules -- drawn so
    that some coincide exactly and some sit on the compared values."""
    records = []
    for _ in range(draw(st.integers(2, 9))):
        record = {
            "mode": draw(st.sampled_from(["ensemble", "meta", "meta_arbiter"])),
            "arbiter.arbiter_threshold": draw(near(observed["verdict"], 0.5, 1.0)),
            "meta.consensus_threshold": draw(near(observed["share"], 0.0, 1.0)),
            "meta.disagreement_threshold": draw(near(observed["disagreement"], 0.0, 1.0)),
            "meta.low_confidence_threshold": draw(near(observed["fallback"], 0.0, 1.0)),
            "rules.long_only": draw(st.booleans()),
            "rules.hold": draw(st.sampled_from(["keep", "flat"])),
            "rules.execution_lag": draw(st.integers(1, 3)),
            "rules.fee": draw(st.sampled_from([0.0, 0.0004])),
        }
        # None: the risk governor is off
        record["min_trade_confidence"] = draw(st.none() | near(observed["base"], 0.3, 0.99))
        records.append(record)
    # repeat some rows exactly, and some with only an unread parameter changed
    for record in list(records)[: draw(st.integers(0, 3))]:
        records.append(dict(record))
    return Grid.from_records(records)


def assert_same_results(first, second):
    pd.testing.assert_frame_equal(first.frame, second.frame, check_exact=True)
    for symbol in second.blocks:
        np.testing.assert_array_equal(first.blocks[symbol], second.blocks[symbol])
        np.testing.assert_array_equal(first.periods[symbol], second.periods[symbol])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_dedup_never_changes_a_result(market, observed, data):
    bars, votes, inputs = market
    grid = data.draw(threshold_grid(observed))
    shared = {"blocks": 3, "chunk_size": data.draw(st.integers(1, 5))}
    deduplicated = sweep(bars, votes, inputs, grid, **shared)
    everything = sweep(bars, votes, inputs, grid, dedup=False, **shared)
    assert_same_results(deduplicated, everything)
    assert everything.streams == {"series": len(grid)}
    assert 1 <= deduplicated.streams["series"] <= len(grid)


def test_dedup_with_layers_recomputed_per_combination(market):
    """Weights, fidelity and a score weight vary: every layer is recomputed per combination,
    and thresholds are left as they are where their compared values are not shared."""
    bars, votes, inputs = market
    grid = Grid.product(
        {
            "ensemble.weights.xgb": [0.25, 0.4],
            "fidelity": ["production", "intended"],
            "arbiter.rsi_weight": [0.25, 0.3],
            "arbiter.arbiter_threshold": [0.6, 0.61, 0.9],
            "rules.size": [0.5, 1.0],
        }
    )
    deduplicated = sweep(bars, votes, inputs, grid, blocks=3)
    assert_same_results(deduplicated, sweep(bars, votes, inputs, grid, blocks=3, dedup=False))
    assert deduplicated.streams["series"] < len(grid)


def test_dedup_with_the_uncertainty_model(market):
    bars, votes, inputs = market
    rng = np.random.default_rng(0)
    model = MetaUncertaintyModel()
    model.coef_ = rng.normal(0, 2, (3, 4 * 4 + 10))
    model.intercept_ = rng.normal(0, 1, 3)
    grid = Grid.product(
        {
            "meta.entropy_threshold": [0.0, 0.3, 0.31, 0.6, 0.95, 1.0],
            "meta.consensus_threshold": [0.5, 1.0],
        }
    )
    kwargs = {"blocks": 3, "uncertainty_model": model, "modes": ["meta_arbiter"]}
    deduplicated = sweep(bars, votes, inputs, grid, **kwargs)
    assert_same_results(deduplicated, sweep(bars, votes, inputs, grid, dedup=False, **kwargs))
    assert deduplicated.frame["escalation_rate"].nunique() > 2  # the thresholds mattered


def test_thresholds_between_two_compared_values_are_one_class(market, observed):
    bars, votes, inputs = market
    verdict = observed["verdict"]
    low, high = verdict[verdict > 0.7][:2]  # two adjacent observed verdict confidences
    between = list(np.linspace(low, high, 6)[1:-1])
    grid = Grid.product(
        {"mode": ["meta_arbiter"], "arbiter.arbiter_threshold": [*between, low, high]}
    )
    combinations = pack_grid(grid)
    bar_inputs = symbol_inputs("series", bars, votes, inputs, combinations).bar_inputs
    # a threshold strictly between cuts the verdicts where ``high`` does; ``low`` does not
    np.testing.assert_array_equal(
        first_of_class(decision_keys(combinations, bar_inputs)), [0, 0, 0, 0, 4, 0]
    )
    result = sweep(bars, votes, inputs, grid, blocks=3)
    frame = result.frame.drop(columns=["combination", "arbiter.arbiter_threshold"])
    for row in range(4):
        pd.testing.assert_series_equal(frame.iloc[row], frame.iloc[5], check_names=False)


def test_unread_parameters_do_not_split_a_class(market):
    bars, votes, inputs = market
    grid = Grid.product(
        {
            "mode": ["ensemble", "meta"],
            "arbiter.arbiter_threshold": [0.6, 0.9],
            "meta.consensus_threshold": [0.6, 0.9],
        }
    )
    combinations = pack_grid(grid)
    bar_inputs = symbol_inputs("series", bars, votes, inputs, combinations).bar_inputs
    classes = first_of_class(decision_keys(combinations, bar_inputs))
    frame = grid.frame()
    # ensemble reads neither threshold, meta not the Arbiter's
    assert len(np.unique(classes[frame["mode"].eq("ensemble").to_numpy()])) == 1
    meta = frame["mode"].eq("meta").to_numpy()
    assert len(np.unique(classes[meta])) == 2


def test_targets_one_ulp_apart_are_different_streams(market):
    """The order keys are exact: sizes one ulp apart send different orders and are simulated
    apart (their results may differ in the last bits)."""
    bars, votes, inputs = market
    size = 0.5
    grid = Grid.from_records(
        [{"rules.size": value} for value in (size, float(np.nextafter(size, 1.0)), size)]
    )
    result = sweep(bars, votes, inputs, grid, modes=["ensemble"], blocks=3)
    assert result.streams["series"] == 2
    everything = sweep(bars, votes, inputs, grid, modes=["ensemble"], blocks=3, dedup=False)
    assert_same_results(result, everything)


def test_canonical_thresholds_keep_every_comparison():
    rng = np.random.default_rng(1)
    values = np.unique(np.round(rng.uniform(0, 1, 40), 2))
    thresholds = np.concatenate(
        [values, np.nextafter(values, 2), np.nextafter(values, -1), rng.uniform(-0.5, 1.5, 50)]
    )
    thresholds = np.append(thresholds, [np.inf, -np.inf])
    above = _smallest_at_or_above(values, thresholds)
    below = _largest_at_or_below(values, thresholds)
    for original, canonical in zip(thresholds, above, strict=True):
        np.testing.assert_array_equal(values < original, values < canonical)
        np.testing.assert_array_equal(values >= original, values >= canonical)
    for original, canonical in zip(thresholds, below, strict=True):
        np.testing.assert_array_equal(values > original, values > canonical)
    assert np.isnan(_smallest_at_or_above(values, np.array([np.nan]))).all()


def test_first_of_class_compares_rows_bit_for_bit():
    keys = np.array([[1.0, 0.0], [1.0, -0.0], [1.0, 0.0], [np.nan, 2.0], [np.nan, 2.0]])
    np.testing.assert_array_equal(first_of_class(keys), [0, 1, 0, 3, 3])


def test_dedup_must_be_a_boolean(market):
    bars, votes, inputs = market
    with pytest.raises(ValueError, match="dedup must be True or False"):
        sweep(bars, votes, inputs, {"arbiter.arbiter_threshold": [0.7]}, dedup="yes")


@pytest.mark.parametrize("sizes", [[0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [0.5]])
def test_the_decision_pass_is_skipped_when_the_first_bars_show_distinct_streams(
    market, monkeypatch, sizes
):
    """Six sizes send six different streams from the first orders on: the full pass would save
    nothing and is skipped (every distinct row is simulated). Results equal simulating
    everything either way."""
    bars, votes, inputs = market
    monkeypatch.setattr(dedup, "PREFIX_BARS", 200)
    grid = Grid.product({"rules.size": sizes, "arbiter.arbiter_threshold": [0.2, 0.3, 0.4]})
    calls = []
    original = dedup.first_of_class
    monkeypatch.setattr(
        dedup, "first_of_class", lambda keys: calls.append(len(keys)) or original(keys)
    )
    result = sweep(bars, votes, inputs, grid, modes=["meta"], blocks=3)
    assert_same_results(
        result, sweep(bars, votes, inputs, grid, modes=["meta"], blocks=3, dedup=False)
    )
    if len(sizes) > 1:
        assert result.streams["series"] == len(sizes)  # meta never reads the Arbiter threshold
        assert len(calls) == 2  # the keys, and the prefix's streams: no full pass
    else:
        assert result.streams["series"] == 1


def test_shared_decisions_equal_each_combination_deciding_alone(market):
    """Combinations that differ only in their position rules decide once per tile; their
    counts, hashes and keys equal those of each deciding alone."""
    bars, votes, inputs = market
    grid = Grid.product(
        {
            "arbiter.arbiter_threshold": [0.6, 0.8],
            "rules.hold": ["keep", "flat"],
            "rules.max_hold_bars": [None, 5],
            "rules.long_only": [True, False],
        }
    )
    combinations = pack_grid(grid)
    prepared = symbol_inputs("series", bars, votes, inputs, combinations)
    everything = np.arange(len(grid))
    shared_stats, shared_keys = decision_pass(prepared, combinations, everything)
    alone_stats = np.zeros_like(shared_stats)
    alone_keys = np.empty_like(shared_keys)
    kernel_inputs = _kernel_inputs(
        prepared,
        combinations.rows(everything),
        combinations.meta_models,
        combinations.coef,
        combinations.intercept,
        np.array([0, len(bars)]),
        np.array([0, len(bars)]),
    )
    streams_nb(kernel_inputs, everything, alone_stats, alone_keys, None, None, None)
    np.testing.assert_array_equal(shared_stats, alone_stats)
    np.testing.assert_array_equal(shared_keys, alone_keys)
    assert len(np.unique(shared_keys, axis=0)) > 2


def test_superiority_is_the_same_from_one_row_per_stream(market):
    """Period returns are kept once per stream; the SPA, Reality Check and StepM verdicts and
    the combinations declared better equal those from every combination's own row."""
    bars, votes, inputs = market
    grid = Grid.product(
        {
            "arbiter.arbiter_threshold": [0.55, 0.6, 0.8, 0.95],
            "meta.consensus_threshold": [0.5, 0.75, 1.0],
            "rules.size": [0.5, 1.0],
        }
    )
    deduplicated = sweep(bars, votes, inputs, grid, period="6h", blocks=3)
    everything = sweep(bars, votes, inputs, grid, period="6h", blocks=3, dedup=False)
    assert deduplicated.stream_periods["series"].shape[0] < len(grid)
    for benchmark in ("ensemble", "buy_and_hold"):
        pd.testing.assert_frame_equal(
            deduplicated.superiority(benchmark, draws=200),
            everything.superiority(benchmark, draws=200),
        )
    pd.testing.assert_frame_equal(
        deduplicated.period_returns("series"), everything.period_returns("series")
    )


def test_packing_checks_each_setting_even_when_an_equal_one_was_built():
    """Configurations are built once per distinct part of a combination; ``1`` is not ``True``
    for a boolean field, so the cache must not let it through."""
    grid = Grid.from_records([{"rules.long_only": True}, {"rules.long_only": 1}])
    with pytest.raises(ValueError, match="combination 1"):
        pack_grid(grid)
    shared = pack_grid(
        Grid.product({"arbiter.arbiter_threshold": [0.6, 0.7], "rules.fee": [0.0, 0.001]})
    )
    assert shared.configs[0] is shared.configs[1]  # same thresholds, other fee
    assert shared.rules[0] is shared.rules[2]
    np.testing.assert_array_equal(shared.params[0], shared.params[1])
