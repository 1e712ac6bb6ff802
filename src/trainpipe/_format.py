"""One way to print a number: every table and console line that shows a metric or a parameter uses it.

``format_number(0.8465499999999999)`` and ``format_number(0.84655)`` both give ``0.84655``: up to six
significant digits, no trailing zeros, whole numbers without a decimal point, very large or small ones in
exponent form (``1.5e-07``). Nothing here imports more than the standard library.
"""

from __future__ import annotations

import math
from typing import Any

SIGNIFICANT = 6


def format_number(x: float | int) -> str:
    """``x`` with up to six significant digits: 0.84655, 12, 0.000123457, 1.23457e+09, nan, inf."""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    value = float(x)
    if math.isfinite(value) and value.is_integer() and abs(value) < 10**SIGNIFICANT:
        return str(int(value))  # 3.0 -> "3" (and -0.0 -> "0")
    return f"{value:.{SIGNIFICANT}g}"


def format_value(v: Any) -> str:
    """A number through :func:`format_number`; anything else (a string, None) as ``str`` gives it."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return format_number(v)
    return str(v)


__all__ = ["format_number", "format_value"]
