"""Checking the project's YAML files: the small validators every reader (sweep, evaluation,
collection, training) uses, each raising the reader's own one-line ConfigError through ``fail``."""

from __future__ import annotations

from typing import Any, Callable

from aqm_llm.errors import ConfigError

Scalar = str | int | float | bool
Fail = Callable[[str], ConfigError]  # builds the error for a message, prefixed with the file
#: Largest seed count of {count: N}.
MAX_SEEDS = 10_000


def failing_with(source: str) -> Fail:
    """A reader's ``fail``: the one-line ConfigError for a message, prefixed with the file."""
    def fail(msg: str) -> ConfigError:
        return ConfigError(f"{source}: {msg}")
    return fail


def top_level(doc: Any, keys: tuple[str, ...], expected: str, source: str,
              default_name: str) -> tuple[Fail, str]:
    """A config file's top level, checked: a mapping whose keys are all among ``keys``
    (``expected`` names the main ones for the error when it is not one) and whose ``name``, if
    given, is a non-empty string. Returns the reader's ``fail`` and the file's name."""
    fail = failing_with(source)
    if not isinstance(doc, dict):
        raise fail(f"expected a mapping with keys such as {expected}")
    unknown = [k for k in doc if k not in keys]
    if unknown:
        raise fail(f"unknown key '{unknown[0]}'; allowed: {', '.join(keys)}")
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise fail("name: expected a non-empty string")
    return fail, name


def checked_mapping(item: Any, where: str, keys: tuple[str, ...], fail: Fail) -> dict[str, Any]:
    """``item`` as a mapping whose keys are all among ``keys`` (None: empty)."""
    if item is None:
        return {}
    if not isinstance(item, dict):
        raise fail(f"{where}: expected a mapping with {', '.join(keys)}")
    unknown = [k for k in item if k not in keys]
    if unknown:
        raise fail(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(keys)}")
    return item


def as_flag(value: Any, where: str, fail: Fail) -> bool:
    """A yes/no key: YAML true or false, nothing else (not 0/1, not "yes")."""
    if not isinstance(value, bool):
        raise fail(f"{where}: bad value '{value}': expected true or false")
    return value


def as_run_timeout(value: Any, fail: Fail) -> float | None:
    """``run_timeout_s`` of a sweep, collect or evaluation file: None or seconds > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise fail(f"run_timeout_s: bad value '{value}': expected seconds > 0 (or null for the default)")
    return float(value)


def as_list(value: Any, where: str, fail: Fail) -> list[Any]:
    if not isinstance(value, list):
        raise fail(f"{where}: bad value '{value}': expected a list")
    return value


def as_mapping(value: Any, where: str, fail: Fail) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise fail(f"{where}: expected a mapping of names to values")
    return value


def as_names(value: Any, where: str, fail: Fail) -> tuple[str, ...]:
    """A list of non-empty names, first occurrence kept; the error names the first bad item."""
    items = as_list(value, where, fail)
    for v in items:
        if not isinstance(v, str) or not v:
            raise fail(f"{where}: bad value '{v}': expected a name")
    return tuple(dict.fromkeys(items))


def as_one_or_more_names(value: Any, where: str, fail: Fail, *, allow_empty: bool) -> tuple[str, ...]:
    """One name or a list of names (the form ``rung`` and ``target.calibration`` take).
    ``allow_empty``: whether an empty list means "none" (True) or is refused (False)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or (not items and not allow_empty):
        raise fail(f"{where}: bad value '{value}': expected a name or a "
                   f"{'' if allow_empty else 'non-empty '}list of names")
    return as_names(items, where, fail)


def as_scalar(value: Any, where: str, fail: Fail) -> Scalar:
    if isinstance(value, (str, int, float, bool)):
        return value
    raise fail(f"{where}: expected a single value (a string, number or true/false), got {type(value).__name__}")


def as_values(value: Any, where: str, fail: Fail) -> tuple[Scalar, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise fail(f"{where}: empty list")
    return tuple(as_scalar(v, where, fail) for v in items)


def as_params(value: Any, where: str, fail: Fail) -> dict[str, Scalar]:
    return {k: as_scalar(v, f"{where}.{k}", fail) for k, v in as_mapping(value, where, fail).items()}


def as_seeds(value: Any, where: str, fail: Fail) -> tuple[int, ...]:
    if isinstance(value, dict):
        extra = set(value) - {"count", "start"}
        count, start = value.get("count"), value.get("start", 1)
        if extra or not is_positive_int(count) or not is_positive_int(start):
            raise fail(f"{where}: expected {{count: N, start: S}} with positive integers")
        if count > MAX_SEEDS:
            raise fail(f"{where}: bad count '{count}': at most {MAX_SEEDS} seeds")
        return tuple(range(start, start + count))
    if isinstance(value, list) and value and all(is_positive_int(s) for s in value):
        return tuple(dict.fromkeys(value))
    raise fail(f"{where}: expected a list of integers >= 1 such as [1, 2, 3], or {{count: 3, start: 1}}")


def is_positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1
