"""Action encoding shared by every layer: SELL = -1, HOLD = 0, BUY = +1 (SPEC, encoding)."""

from __future__ import annotations

SELL = -1
HOLD = 0
BUY = 1

ACTION_NAMES = {SELL: "SELL", HOLD: "HOLD", BUY: "BUY"}
ACTION_CODES = {name: code for code, name in ACTION_NAMES.items()}


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
