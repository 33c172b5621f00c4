"""Numba kernel of the position model: decisions at bar close -> target exposure."""

from __future__ import annotations

from numba import njit

HOLD_KEEP = 0
HOLD_FLAT = 1


@njit(cache=True)
def target_exposure_nb(
    actions, confidences, long_only, hold_policy, max_hold_bars, size, scale_by_confidence, out
):
    """Exposure (fraction of equity, signed) wanted after each bar's decision.

    Parameters
    ----------
    actions : ndarray of int8, shape (bars,)
        Final decisions: -1 SELL, 0 HOLD, 1 BUY.
    confidences : ndarray of float64, shape (bars,)
    long_only : bool
        SELL goes flat instead of short.
    hold_policy : int
        0: HOLD keeps the position; 1: HOLD goes flat.
    max_hold_bars : int
        Bars after the last opening or renewing signal at which the position closes (0: never).
    size : float
        Exposure of a position, fraction of equity.
    scale_by_confidence : bool
        Multiply ``size`` by the confidence of the signal that opens or reverses a position.
    out : ndarray of float64, shape (bars,)
    """
    direction = 0
    exposure = 0.0
    held = 0
    for t in range(actions.shape[0]):
        action = actions[t]
        wanted = direction
        if action == 1:
            wanted = 1
        elif action == -1:
            wanted = 0 if long_only else -1
        elif hold_policy == HOLD_FLAT:
            wanted = 0
        if action != 0:
            held = 0  # a signal opens or renews the position
        else:
            held += 1
        if wanted != direction:
            direction = wanted
            if direction == 0:
                exposure = 0.0
            else:
                exposure = size * (confidences[t] if scale_by_confidence else 1.0)
        if max_hold_bars > 0 and direction != 0 and held >= max_hold_bars:
            direction = 0
            exposure = 0.0
        out[t] = direction * exposure
    return out
