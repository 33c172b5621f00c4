"""Reason texts of the live engine (H-META-12, H-ARB-11, H-ARB-12). The live logs and
dashboards grep them, so the reference agents and the decoding of the vectorised replay both
build them here."""

from __future__ import annotations

from qt_backtest.codes import (
    ESCALATING_REASONS,
    GATE_CODES,
    GATE_OUTCOMES,
    META_REASON_CODES,
    META_REASONS,
    TAG_BITS,
    TAG_MACD,
    TAG_MOMENTUM,
    TAG_RSI,
)

__all__ = [
    "ANALYSIS_ERROR",
    "BUY_TAGS",
    "ESCALATING_REASONS",
    "FALLBACK_TAG",
    "GATE_CODES",
    "GATE_OUTCOMES",
    "HOLD_REASON",
    "META_REASONS",
    "META_REASON_CODES",
    "SELL_TAGS",
    "TAG_MACD",
    "TAG_MOMENTUM",
    "TAG_RSI",
    "arbiter_reason",
    "arbiter_reasons",
    "strong_consensus_reason",
]


def strong_consensus_reason(action: int) -> str:
    """``strong_consensus_buy`` etc.; ``action`` is -1, 0 or 1."""
    return META_REASONS[action + 1]


# Arbiter reason tags, in the order of their bits (codes.TAG_INDICATORS)
BUY_TAGS = ("oversold_rsi", "bullish_macd", "strong_momentum")
SELL_TAGS = ("overbought_rsi", "bearish_macd", "negative_momentum")
FALLBACK_TAG = "technical_alignment"
ANALYSIS_ERROR = "analysis_error: 'NoneType' object has no attribute 'get'"


HOLD_REASON = "neutral_market: score={:.3f} in neutral zone"


def arbiter_reason(action: int, tag_bits: int, score: float) -> str:
    """The Arbiter's reason text from its action, tag bits and score."""
    if action == 0:
        return HOLD_REASON.format(score)
    names = BUY_TAGS if action > 0 else SELL_TAGS
    tags = [name for bit, name in zip(TAG_BITS.values(), names, strict=True) if tag_bits & bit]
    prefix = "buy_signal: " if action > 0 else "sell_signal: "
    return prefix + (", ".join(tags) if tags else FALLBACK_TAG)


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
