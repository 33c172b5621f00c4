"""The worked examples of docs/hierarchy.md (X-ENS-1 to X-ARB-10), as data shared by the
reference-agent and replay tests; each entry names its example."""

from __future__ import annotations

MODELS = ("xgb", "lgbm", "nhits", "patchtst")
LETTERS = {"B": "BUY", "S": "SELL", "H": "HOLD"}


def predictions(text: str, models=MODELS) -> dict:
    """``"B.75 S.7"`` -> predictions of the first models in order."""
    result = {}
    for model, vote in zip(models, text.split(), strict=False):
        result[model] = {"action": LETTERS[vote[0]], "confidence": float(vote[1:])}
    return result


# votes -> (action, confidence, consensus label)
ENSEMBLE_CASES = {
    # X-ENS-1
    "strong_buy": ("B.75 B.72 B.68 H.55", "BUY", 0.716667, "strong"),
    # X-ENS-2
    "split_buy": ("B.72 S.70 B.68 S.71", "BUY", 0.70, "split"),
    # X-ENS-3
    "exact_tie_goes_to_buy": ("B.9 B.9 S.6 S.6", "BUY", 0.90, "split"),
    # X-ENS-4
    "hold_outweighs": ("B.9 S.9 H.5 H.5", "HOLD", 0.50, "split"),
    # X-ENS-5
    "sell_plurality": ("S.6 H.7 B.9 S.6", "SELL", 0.60, "split"),
    # X-ENS-6
    "confidence_cap": ("B.99 B.98 B.97 B.96", "BUY", 0.95, "unanimous"),
}

# votes, model count -> (decision, reason, fallback action, fallback confidence or None)
META_CASES = {
    # X-META-1
    "strong_consensus": ("B.75 B.72 B.68 H.55", 4, "DEFER", "strong_consensus_buy", None, None),
    # X-META-2
    "split_vote": ("B.72 S.70 B.68 S.71", 4, "ESCALATE", "split_vote", "BUY", 0.384),
    # X-META-3
    "high_disagreement": ("B.62 S.60 H.58 B.61", 4, "ESCALATE", "high_disagreement", None, None),
    # X-META-4
    "hold_fallback": ("H.55 H.60 B.70 S.65", 4, "ESCALATE", "high_disagreement", "HOLD", 0.2875),
    # X-META-5
    "consensus_beats_low_confidence": (
        "B.5 B.5 B.5 S.9",
        4,
        "DEFER",
        "strong_consensus_buy",
        "BUY",
        0.40,
    ),
    # X-META-6
    "three_models_clear": ("B.9 B.9 S.9", 3, "DEFER", "clear_ensemble_no_model", "BUY", 0.5625),
    # X-META-7
    "two_active_padded": ("B.70 B.65", 4, "ESCALATE", "high_disagreement", None, None),
}

# indicators, conservative -> (action, confidence, score or None, reason or None)
ARBITER_CASES = {
    # X-ARB-1
    "buy": (
        dict(
            rsi=25, macd=0.05, macd_signal=-0.02, bb_position=0.15, volume_trend=1.8, momentum=0.025
        ),
        True,
        "BUY",
        0.869167,
        0.338333,
        "buy_signal: bullish_macd, strong_momentum",
    ),
    # X-ARB-2
    "sell": (
        dict(
            rsi=78,
            macd=-0.03,
            macd_signal=0.02,
            bb_position=0.88,
            volume_trend=1.6,
            momentum=-0.022,
        ),
        True,
        "SELL",
        0.845167,
        None,
        None,
    ),
    # X-ARB-3
    "neutral": (
        dict(
            rsi=52,
            macd=0.001,
            macd_signal=0.0005,
            bb_position=0.5,
            volume_trend=1.0,
            momentum=0.005,
        ),
        True,
        "HOLD",
        0.6975,
        None,
        None,
    ),
    # X-ARB-4
    "rsi_20_alone": (dict(rsi=20), True, "HOLD", 0.566667, None, None),
    # X-ARB-5
    "rsi_0_alone": (dict(rsi=0), True, "BUY", 0.80, None, "buy_signal: oversold_rsi"),
    # X-ARB-6
    "all_neutral": ({}, True, "HOLD", 0.70, 0.0, "neutral_market: score=0.000 in neutral zone"),
    # X-ARB-7
    "volume_without_macd": (dict(volume_trend=2.0, macd=0.0), True, "HOLD", 0.55, -0.075, None),
    # X-ARB-8
    "macd_006_alone": (dict(macd=0.06), True, "BUY", 0.775, None, "buy_signal: bullish_macd"),
    # X-ARB-9
    "macd_0048_alone": (dict(macd=0.048), True, "HOLD", 0.46, None, None),
    # X-ARB-10
    "macd_0048_aggressive": (
        dict(macd=0.048),
        False,
        "BUY",
        0.76,
        None,
        "buy_signal: technical_alignment",
    ),
}
