"""The project's vocabulary: every code, label and column layout that more than one module reads.

Each numbering here is derived from one tuple of names, so that a code and its label can never
drift apart: the position of a name in its tuple is its code (shifted by one for actions, whose
codes are -1, 0 and 1). This module sits at the bottom of the package and imports nothing from
it; the kernels read the integer constants below as compile-time constants.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def positions(names: tuple[str, ...]) -> dict[str, int]:
    """``{name: position}`` of a tuple of distinct names."""
    index = {name: position for position, name in enumerate(names)}
    if len(index) != len(names):
        raise ValueError(f"names must be distinct, got {names}")
    return index


# --- actions -----------------------------------------------------------------------------------

#: Action labels in code order: SELL = -1, HOLD = 0, BUY = 1.
ACTION_LABELS = ("SELL", "HOLD", "BUY")
ACTION_CODES = {label: position - 1 for label, position in positions(ACTION_LABELS).items()}
ACTION_NAMES = {code: label for label, code in ACTION_CODES.items()}
SELL = ACTION_CODES["SELL"]
HOLD = ACTION_CODES["HOLD"]
BUY = ACTION_CODES["BUY"]
#: The categorical dtype of action columns (category code = action code + 1).
ACTION_DTYPE = pd.CategoricalDtype(ACTION_LABELS)


def action_code(action: str | int) -> int:
    """``"BUY"`` / ``"buy"`` / ``1`` -> 1; raises ValueError naming the bad action."""
    if isinstance(action, str):
        code = ACTION_CODES.get(action.strip().upper())
        if code is None:
            raise ValueError(f"unknown action {action!r}: expected BUY, SELL or HOLD")
        return code
    if isinstance(action, bool) or action not in ACTION_NAMES:
        raise ValueError(f"unknown action {action!r}: expected -1 (SELL), 0 (HOLD) or 1 (BUY)")
    return int(action)


def action_name(code: int) -> str:
    return ACTION_NAMES[int(code)]


def encode_actions(column) -> tuple:
    """Vectorised :func:`action_code` for a pandas Series.

    Returns ``(codes, present, bad)``: int8 codes (0 where absent or bad), where a value is
    present (not missing), and where a present value is not an action. Text is matched after
    stripping and upper-casing; numbers must be -1, 0 or 1.
    """
    present = column.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = present & ~np.isin(values, tuple(ACTION_NAMES))
        codes = np.where(present & ~bad, values, 0.0).astype(np.int8)
        return codes, present, bad
    # categorise once, then translate the few distinct values
    categorical = (
        column.array
        if isinstance(column.dtype, pd.CategoricalDtype)
        else (pd.Categorical(column.astype(object)))
    )
    unknown = 2  # not an action code
    found = [
        ACTION_CODES.get(str(value).strip().upper(), unknown) for value in categorical.categories
    ]
    lookup = np.array([*found, 0], dtype=np.int64)  # the extra slot serves code -1 (missing)
    mapped = lookup[np.asarray(categorical.codes)]
    bad = present & (mapped == unknown)
    return np.where(bad, 0, mapped).astype(np.int8), present, bad


# --- models ------------------------------------------------------------------------------------

#: Gradient-boosted tree model slots.
TREE_MODELS = ("xgb", "lgbm")
#: Neural model slots, reading lookback windows of the features.
NEURAL_MODELS = ("nhits", "patchtst")
#: The live ensemble's models, in vote order.
DEFAULT_MODELS = (*TREE_MODELS, *NEURAL_MODELS)

# --- hierarchy settings that the kernels read as codes -----------------------------------------

CONSENSUS_LABELS = ("unanimous", "strong", "split", "weak")
#: Layer 1's consensus codes: ``CONSENSUS_LABELS`` positions, then no usable vote.
CONSENSUS_CATEGORIES = (*CONSENSUS_LABELS, "no_valid_models")
NO_VALID_MODELS = positions(CONSENSUS_CATEGORIES)["no_valid_models"]
MODES = ("ensemble", "meta", "meta_arbiter")
MODE_ENSEMBLE = positions(MODES)["ensemble"]
MODE_META = positions(MODES)["meta"]
MODE_META_ARBITER = positions(MODES)["meta_arbiter"]
FIDELITIES = ("production", "intended")
INTENDED = positions(FIDELITIES)["intended"]
WIRINGS = ("designed", "deployed")

# --- Meta-V2 -----------------------------------------------------------------------------------

#: Meta's decisions, by code (-1 in the replay's outputs: Meta did not run).
META_DECISIONS = ("DEFER", "ESCALATE")
#: Meta's reasons, by code; the first three are the strong-consensus reasons of SELL, HOLD, BUY.
META_REASONS = (
    "strong_consensus_sell",
    "strong_consensus_hold",
    "strong_consensus_buy",
    "split_vote",
    "high_disagreement",
    "low_ensemble_confidence",
    "clear_ensemble_no_model",
    "undecided_market",
    "clear_ensemble",
)
META_REASON_CODES = positions(META_REASONS)
ESCALATING_REASONS = frozenset(
    {"split_vote", "high_disagreement", "low_ensemble_confidence", "undecided_market"}
)
REASON_SPLIT_VOTE = META_REASON_CODES["split_vote"]
REASON_HIGH_DISAGREEMENT = META_REASON_CODES["high_disagreement"]
REASON_LOW_CONFIDENCE = META_REASON_CODES["low_ensemble_confidence"]
REASON_NO_MODEL = META_REASON_CODES["clear_ensemble_no_model"]
REASON_UNDECIDED = META_REASON_CODES["undecided_market"]
REASON_CLEAR = META_REASON_CODES["clear_ensemble"]

# --- the Arbiter -------------------------------------------------------------------------------

#: Outcomes of the override gate, by code (-1 in the replay's outputs: no Arbiter call).
GATE_OUTCOMES = ("override", "defer_low_confidence", "defer_hold", "defer_base_hold")
GATE_CODES = positions(GATE_OUTCOMES)
GATE_OVERRIDE = GATE_CODES["override"]
GATE_LOW_CONFIDENCE = GATE_CODES["defer_low_confidence"]
GATE_HOLD = GATE_CODES["defer_hold"]
GATE_BASE_HOLD = GATE_CODES["defer_base_hold"]

#: The indicators that tag an Arbiter decision, one bit each, in the order the reason lists them.
TAG_INDICATORS = ("rsi", "macd", "momentum")
TAG_BITS = {name: 1 << position for name, position in positions(TAG_INDICATORS).items()}
TAG_RSI = TAG_BITS["rsi"]
TAG_MACD = TAG_BITS["macd"]
TAG_MOMENTUM = TAG_BITS["momentum"]

#: Where the final decision came from, by code.
SOURCES = ("ensemble", "arbiter")

# --- kernel layouts ----------------------------------------------------------------------------

#: The replay kernel's outputs, one array per bar each, in argument order: name -> dtype.
REPLAY_OUTPUTS = {
    "base_action": np.int8,
    "base_confidence": np.float64,
    "consensus": np.int8,
    "voters": np.int8,
    "meta_decision": np.int8,
    "meta_reason": np.int8,
    "meta_action": np.int8,
    "meta_confidence": np.float64,
    "disagreement": np.float64,
    "entropy": np.float64,
    "arbiter_action": np.int8,
    "arbiter_confidence": np.float64,
    "arbiter_score": np.float64,
    "arbiter_tags": np.int8,
    "arbiter_error": np.bool_,
    "gate": np.int8,
    "final_action": np.int8,
    "final_confidence": np.float64,
    "source": np.int8,
    "risk_veto": np.bool_,
}

#: Columns of the sweep kernel's per-bar inputs.
SWEEP_BAR_INPUTS = (
    "action",  # Layer 1 vote (-1, 0, 1)
    "mean",  # mean confidence of the models voting it
    "agreeing",  # models voting it (0: no usable vote)
    "voters",  # active models
    "share",  # Meta's top vote share
    "split",  # Meta's split-vote flag (0/1)
    "fallback",  # Meta's fallback confidence
    "entropy",  # uncertainty model's normalised entropy (NaN without a model)
    "score",  # Arbiter score
    "base_action",  # Layer 1's decision and its confidence
    "base_confidence",
    "verdict",  # the Arbiter's verdict on the score and its confidence
    "verdict_confidence",
    "fill",  # fill price of the bar
    "close",  # close of the bar
    "open",  # open, low and high: the close-out checks
    "low",
    "high",
)

#: Columns of the sweep's position rules, one row per combination.
SWEEP_RULES = (
    "long_only",
    "hold_flat",
    "max_hold",  # 0: never
    "size",
    "scale",
    "lag",
    "fee",
    "slippage",  # fraction
    "fill_at_open",  # 1: orders fill at the open, 0: at the close
    "maintenance",  # maintenance margin of the close-out
)

#: Columns of the sweep's statistics, one row per combination.
SWEEP_STATS = (
    "final_value",
    "sum",  # sum of bar returns
    "sumsq",
    "sum3",
    "sum4",
    "downside",  # sum of min(r, 0) ** 2
    "value_sum",
    "max_drawdown",  # most negative value / running peak - 1 (init cash included)
    "drawdown_bars",  # longest stretch below a previous peak
    "drawdown_start",
    "drawdown_stop",
    "exposed",  # bars ending with a position
    "traded",  # notional filled
    "fees",
    "trades",  # closed trades
    "wins",
    "win_sum",
    "losses",
    "loss_sum",
    "pnl_sum",
    "meta_ran",
    "escalations",
    "arbiter_calls",
    "overrides",
    "vetoes",
    "orders",
    "ruin_bar",  # bar of the close-out, -1: none
    "stream_a",  # two hashes of the orders sent (bar and target of each): equal streams of
    "stream_b",  # orders under equal rules give equal results
)

#: Columns of the sweep's per-block moments (combinations x blocks x columns).
SWEEP_BLOCKS = (
    "sum",
    "sumsq",
    "growth",  # value at the block's end / value before it
)

#: The sweep's running state of a combination between tiles of bars.
SWEEP_STATE = (
    "cash",
    "position",
    "previous_value",
    "direction",
    "exposure",
    "held",
    "last_target",
    "trade_direction",
    "entry_size",
    "entry_gross",
    "entry_fees",
    "peak",  # running peak including init cash
    "peak_value",  # running peak of bar values only
    "run_start",  # first bar of the current stretch below the peak, -1 when at a peak
    "block",
    "block_sum",
    "block_sumsq",
    "block_start",  # value before the current block
    "ruined",  # 1 after a close-out
    "period",  # current return period
    "period_start",  # value before the current period
)
