"""Action encoding shared by every layer: SELL = -1, HOLD = 0, BUY = +1 (H-ENC-1)."""

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


def encode_actions(column) -> tuple:
    """Vectorised :func:`action_code` for a pandas Series.

    Returns ``(codes, present, bad)``: int8 codes (0 where absent or bad), where a value is
    present (not missing), and where a present value is not an action. Text is matched after
    stripping and upper-casing; numbers must be -1, 0 or 1.
    """
    import numpy as np
    import pandas as pd

    present = column.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = present & ~np.isin(values, (-1.0, 0.0, 1.0))
        codes = np.where(present & ~bad, values, 0.0).astype(np.int8)
        return codes, present, bad
    # categorise once, then translate the few distinct values
    categorical = (
        column.array
        if isinstance(column.dtype, pd.CategoricalDtype)
        else (pd.Categorical(column.astype(object)))
    )
    unknown = 2  # not an action code
    lookup = [
        ACTION_CODES.get(str(value).strip().upper(), unknown) for value in categorical.categories
    ]
    lookup = np.array([*lookup, 0], dtype=np.int64)  # the extra slot serves code -1 (missing)
    mapped = lookup[np.asarray(categorical.codes)]
    bad = present & (mapped == unknown)
    return np.where(bad, 0, mapped).astype(np.int8), present, bad
