"""Default indicator parameters: the values of I-ARB-1 and I-MOM-1, defined once.

Everything else (function signatures, streaming classes, :class:`ArbiterInputConfig`) refers
to these names instead of repeating the numbers.
"""

RSI_PERIOD = 14
MACD_FAST = 12
MACD_SLOW = 26
MACD_SIGNAL = 9
BB_PERIOD = 20
BB_NBDEV = 2.0
VOLUME_PERIOD = 20
ATR_PERIOD = 14
VOLATILITY_PERIOD = 20
MOMENTUM_HORIZON = "1h"
MACD_SCALES = ("price", "percent")
MACD_SCALE = "price"
