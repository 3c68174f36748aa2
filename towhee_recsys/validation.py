"""One message shape for invalid arguments: parameter, expected, received, fix."""

from __future__ import annotations

from typing import Any

from towhee_recsys.errors import InvalidParameterError


def invalid_parameter(name: str, expected: str, received: Any, fix: str = "") -> InvalidParameterError:
    """Build the error for an invalid argument `name`."""
    message = f"Invalid {name}: expected {expected}, got {received!r}."
    if fix:
        message += f" {fix}"
    return InvalidParameterError(message)


def check_positive_int(name: str, value: Any) -> int:
    """Return `value` if it is an integer >= 1, else raise InvalidParameterError."""
    if isinstance(value, bool) or not isinstance(value, int) and not _is_numpy_int(value):
        raise invalid_parameter(name, "an integer >= 1", value)
    if value < 1:
        raise invalid_parameter(name, "an integer >= 1", value)
    return int(value)


def check_fraction(name: str, value: Any, *, allow_zero: bool = True) -> float:
    """Return `value` as a float in [0, 1) (or (0, 1) without `allow_zero`)."""
    low_ok = (lambda v: v >= 0.0) if allow_zero else (lambda v: v > 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low_ok(value) and value < 1.0):
        bounds = "[0, 1)" if allow_zero else "(0, 1)"
        raise invalid_parameter(name, f"a number in {bounds}", value)
    return float(value)


def _is_numpy_int(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iu"
