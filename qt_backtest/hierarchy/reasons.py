"""Reason texts of the live engine (H-META-12, H-ARB-11, H-ARB-12). The live logs and
dashboards grep them, so the reference agents and the decoding of the vectorised replay both
build them here."""

from __future__ import annotations

# Meta-V2 reasons, by code
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
META_REASON_CODES = {reason: code for code, reason in enumerate(META_REASONS)}
ESCALATING_REASONS = frozenset(
    {"split_vote", "high_disagreement", "low_ensemble_confidence", "undecided_market"}
)


def strong_consensus_reason(action: int) -> str:
    """``strong_consensus_buy`` etc.; ``action`` is -1, 0 or 1."""
    return META_REASONS[action + 1]


# Arbiter reason tags, one bit each, in the order the live text lists them
BUY_TAGS = ("oversold_rsi", "bullish_macd", "strong_momentum")
SELL_TAGS = ("overbought_rsi", "bearish_macd", "negative_momentum")
TAG_RSI = 1
TAG_MACD = 2
TAG_MOMENTUM = 4
FALLBACK_TAG = "technical_alignment"
ANALYSIS_ERROR = "analysis_error: 'NoneType' object has no attribute 'get'"


HOLD_REASON = "neutral_market: score={:.3f} in neutral zone"


def arbiter_reason(action: int, tag_bits: int, score: float) -> str:
    """The Arbiter's reason text from its action, tag bits and score."""
    if action == 0:
        return HOLD_REASON.format(score)
    names = BUY_TAGS if action > 0 else SELL_TAGS
    tags = [
        name
        for bit, name in zip((TAG_RSI, TAG_MACD, TAG_MOMENTUM), names, strict=True)
        if tag_bits & bit
    ]
    prefix = "buy_signal: " if action > 0 else "sell_signal: "
    return prefix + (", ".join(tags) if tags else FALLBACK_TAG)


# Gate outcomes of an Arbiter call
GATE_OUTCOMES = ("override", "defer_low_confidence", "defer_hold", "defer_base_hold")
GATE_CODES = {outcome: code for code, outcome in enumerate(GATE_OUTCOMES)}


def arbiter_reasons(actions, tag_bits, scores) -> list[str]:
    """:func:`arbiter_reason` over sequences; BUY/SELL texts are built once per tag set."""
    signal_texts: dict[tuple[int, int], str] = {}
    texts = []
    hold = HOLD_REASON.format
    for action, tags, score in zip(actions, tag_bits, scores, strict=True):
        if action == 0:
            texts.append(hold(score))
            continue
        key = (int(action), int(tags))
        text = signal_texts.get(key)
        if text is None:
            text = signal_texts[key] = arbiter_reason(key[0], key[1], 0.0)
        texts.append(text)
    return texts
