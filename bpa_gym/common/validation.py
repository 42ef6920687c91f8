"""Declarative, typed argument checking: every bad argument gets one error style.

Configuration lives in pydantic models (see :class:`Arguments`).  :func:`check`
validates a model's fields from keyword arguments and turns pydantic's
``ValidationError`` into a :class:`~bpa_gym.errors.ConfigError` whose message
names the owner, each bad argument, the value given and what is expected::

    GSM8K env: invalid argument
      - seed = -1: must be an integer >= 0 or None (input should be greater than or equal to 0)

The annotated types below are strict where lax coercion would hide a mistake:
``True`` is not an integer, ``2.5`` and ``"64"`` are not integers, ``nan`` and
``inf`` are not usable floats (unless a type says so), and numpy scalars are
accepted as the Python numbers they are.

Example:
    >>> class Demo(Arguments):
    ...     n: PositiveInt = 1
    >>> check(Demo, "demo", n=3).n
    3
    >>> check(Demo, "demo", n=2.5)
    Traceback (most recent call last):
    ...
    bpa_gym.errors.ConfigError: demo: invalid argument
      - n = 2.5: must be an integer >= 1 (got a float, not an integer)
    >>> check(Demo, "demo", m=1)
    Traceback (most recent call last):
    ...
    bpa_gym.errors.ConfigError: demo: invalid argument
      - m = 1: unknown argument; known: n
"""

from __future__ import annotations

import math
import numbers
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from bpa_gym.errors import ConfigError

M = TypeVar("M", bound="Arguments")


def _integer(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("got a bool, not an integer")
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, float):
        raise ValueError("got a float, not an integer")
    if isinstance(v, str):
        raise ValueError("got a string, not an integer")
    raise ValueError(f"got {type(v).__name__}, not an integer")


def _real(v: Any, *, finite: bool = True) -> Any:
    if isinstance(v, bool):
        raise ValueError("got a bool, not a number")
    if isinstance(v, str):
        raise ValueError("got a string, not a number")
    if not isinstance(v, numbers.Real):
        raise ValueError(f"got {type(v).__name__}, not a real number")
    f = float(v)
    if math.isnan(f):
        raise ValueError("got nan")
    if finite and math.isinf(f):
        raise ValueError("got an infinite value")
    return f


def _real_or_inf(v: Any) -> Any:
    return _real(v, finite=False)


def _string(v: Any) -> Any:
    if not isinstance(v, str):
        raise ValueError(f"got {type(v).__name__}, not a string")
    return v


def _bool(v: Any) -> Any:
    import numpy as np

    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise ValueError(f"got {type(v).__name__}, not True/False")


def _described(tp: Any, validator: Any, expected: str, **constraints: Any) -> Any:
    return Annotated[tp, BeforeValidator(validator), Field(description=expected, **constraints)]


#: An integer (numpy integers too; never a bool, float or string).
Int = _described(int, _integer, "an integer")
#: An integer >= 0.
NonNegativeInt = _described(int, _integer, "an integer >= 0", ge=0)
#: An integer >= 1.
PositiveInt = _described(int, _integer, "an integer >= 1", ge=1)
#: A seed: an integer >= 0, or None for fresh entropy.
Seed = Annotated[NonNegativeInt | None, Field(description="an integer >= 0 or None")]
#: A finite real number.
FiniteFloat = _described(float, _real, "a finite number")
#: A finite number >= 0.
NonNegativeFloat = _described(float, _real, "a finite number >= 0", ge=0)
#: A finite number > 0.
PositiveFloat = _described(float, _real, "a finite number > 0", gt=0)
#: A number > 0, ``inf`` allowed (e.g. "no limit").
PositiveFloatOrInf = _described(float, _real_or_inf, "a number > 0 (inf for no limit)", gt=0)
#: A probability in [0, 1].
Probability = _described(float, _real, "a number in [0, 1]", ge=0, le=1)
#: A string.
Str = _described(str, _string, "a string")
#: A non-empty string.
NonEmptyStr = _described(str, _string, "a non-empty string", min_length=1)
#: A real bool (numpy bools too; never 0/1 or "yes").
Bool = _described(bool, _bool, "True or False")


class Arguments(BaseModel):
    """Base of bpa_gym's argument models: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, validate_default=False, frozen=True)


def _expected(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str | None:
    if model is None or not loc or loc[0] not in model.model_fields:
        return None
    return model.model_fields[loc[0]].description


def _reason(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg[:1].lower() + msg[1:]


def format_errors(owner: str, exc: ValidationError, model: type[BaseModel] | None = None,
                  known: list[str] | None = None) -> str:
    """One message for every problem in ``exc`` (see the module docstring)."""
    lines = [f"{owner}: invalid argument" + ("s" if exc.error_count() > 1 else "")]
    seen: set[tuple[Any, ...]] = set()
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        # Unions report one error per member; keep the first per argument.
        key = loc[:1]
        if key in seen:
            continue
        seen.add(key)
        name = ".".join(str(p) for p in loc if not str(p).startswith(("function-", "nullable", "int", "float")))
        shown = repr(err.get("input"))
        if len(shown) > 80:
            shown = shown[:77] + "..."
        if err.get("type") == "extra_forbidden":
            names = known if known is not None else (sorted(model.model_fields) if model else [])
            lines.append(f"  - {name} = {shown}: unknown argument; known: {', '.join(names)}")
            continue
        expected = _expected(model, loc)
        reason = _reason(err)
        lines.append(f"  - {name or 'value'} = {shown}: " + (f"must be {expected} ({reason})" if expected else reason))
    return "\n".join(lines)


def check(model: type[M], owner: str, /, **values: Any) -> M:
    """Validate keyword arguments against ``model``; raise one :class:`ConfigError` listing every problem.

    Args:
        model: An :class:`Arguments` subclass.
        owner: Who takes the arguments, for the message (``"GSM8K env"``, ``"HFReceiver"``).
        **values: The arguments as given.

    Returns:
        The validated model instance.
    """
    try:
        return model(**values)
    except ValidationError as exc:
        raise ConfigError(format_errors(owner, exc, model)) from None


_ADAPTERS: dict[Any, TypeAdapter] = {}


def check_value(tp: Any, value: Any, name: str, owner: str | None = None) -> Any:
    """Validate one value against an annotated type (e.g. ``check_value(Seed, seed, "seed")``).

    Example:
        >>> check_value(Seed, 3, "seed")
        3
        >>> check_value(Seed, -1, "seed", "reset()")
        Traceback (most recent call last):
        ...
        bpa_gym.errors.ConfigError: reset(): invalid argument
          - seed = -1: must be an integer >= 0 or None (input should be greater than or equal to 0)
    """
    adapter = _ADAPTERS.get(tp)
    if adapter is None:
        adapter = _ADAPTERS[tp] = TypeAdapter(tp)
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        expected = None
        meta = getattr(tp, "__metadata__", ())
        for m in meta:
            expected = getattr(m, "description", None) or expected
        reason = _reason(exc.errors()[0])
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        detail = f"must be {expected} ({reason})" if expected else reason
        raise ConfigError(f"{owner or name}: invalid argument\n  - {name} = {shown}: {detail}") from None


__all__ = [
    "Arguments", "Bool", "FiniteFloat", "Int", "NonEmptyStr", "NonNegativeFloat", "NonNegativeInt", "PositiveFloat",
    "PositiveFloatOrInf", "PositiveInt", "Probability", "Seed", "Str", "check", "check_value", "format_errors",
]
