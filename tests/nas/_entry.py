"""Entry points used by the tests as ``tests.nas._entry:<name>``."""

from __future__ import annotations

import math
import time
from typing import Any


def build(architecture: dict[str, Any]) -> float:
    """A smooth toy loss of two widths and an activation."""
    loss = (architecture["w1"] - 48) ** 2 + (architecture["w2"] - 32) ** 2
    return loss / 100.0 + (0.0 if architecture["act"] == "relu" else 0.5)


def flaky(architecture: dict[str, Any]) -> float:
    """Raises for one width, NaN for another, a value otherwise."""
    if architecture["w1"] == 16:
        raise RuntimeError("out of memory (simulated)")
    if architecture["w1"] == 32:
        return math.nan
    return build(architecture)


def slow(architecture: dict[str, Any]) -> float:
    """``build`` after a short sleep, so that a run can be killed in the middle."""
    time.sleep(0.05)
    return build(architecture)


def sleepy(architecture: dict[str, Any]) -> float:
    """``build`` after half a second: a worker is almost always killed while evaluating."""
    time.sleep(0.5)
    return build(architecture)
