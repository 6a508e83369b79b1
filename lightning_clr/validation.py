"""Argument checks, written once: every constructor of the package rejects a bad value with
:class:`InvalidArgument`, which carries the argument, the value and what is allowed.

The app maps an :class:`InvalidArgument` to its config key (``policy.base_lr=...``) from these attributes,
without reading the message. Booleans are not numbers here, and neither are inf and NaN.

Example::

    >>> positive("max_lr", float("inf"))
    Traceback (most recent call last):
    ...
    lightning_clr.validation.InvalidArgument: max_lr=inf must be a finite number > 0
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["InvalidArgument", "boolean", "fail", "finite", "integer", "is_list", "positive"]


class InvalidArgument(ValueError):
    """An argument's value that cannot work: ``str(error)`` is ``"<argument>=<value!r> <allowed>"``."""

    def __init__(self, argument: str, value: Any, allowed: str) -> None:
        super().__init__(f"{argument}={value!r} {allowed}")
        self.argument = argument
        self.value = value
        self.allowed = allowed


def fail(argument: str, value: Any, allowed: str) -> NoReturn:
    """Raise :class:`InvalidArgument`."""
    raise InvalidArgument(argument, value, allowed)


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not one (booleans and strings are not numbers).

    Example::

        >>> finite(3), finite(float("nan")), finite(True), finite("1")
        (3.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def positive(argument: str, value: Any) -> float:
    """``value`` as a float when it is a finite number > 0."""
    number = finite(value)
    if number is None or number <= 0:
        fail(argument, value, "must be a finite number > 0")
    return number


def integer(argument: str, value: Any, minimum: int = 1, purpose: str = "") -> int:
    """``value`` as an int when it is an integer >= ``minimum`` (an integral float such as 2000.0 counts).

    Example::

        >>> integer("step_size", 0)
        Traceback (most recent call last):
        ...
        lightning_clr.validation.InvalidArgument: step_size=0 must be an integer >= 1
    """
    number = finite(value)
    if number is None or number < minimum or not number.is_integer():
        fail(argument, value, f"must be an integer >= {minimum}{purpose}")
    return int(number)


def boolean(argument: str, value: Any) -> bool:
    """``value`` when it is True or False."""
    if not isinstance(value, bool):
        fail(argument, value, "must be true or false")
    return value


def is_list(value: Any) -> bool:
    """A sequence of values (one per param group, say), not a string."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))
