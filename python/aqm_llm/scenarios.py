"""Scenario programs and their parameters.

Each scenario program declares its parameters once, in C++, and prints the declaration
with ``--describe``. This module reads that declaration and checks a user's input
against it before a run starts, so a typo fails in a second, not after a simulation.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping, Sequence

from aqm_llm import native
from aqm_llm.errors import ConfigError

_TIME_RE = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|ms|us|ns|min|h)\s*$")
_TIME_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0}
_RATE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(bps|kbps|Kbps|Mbps|Gbps)\s*$")
_RATE_SCALE = {"bps": 1.0, "kbps": 1e3, "Kbps": 1e3, "Mbps": 1e6, "Gbps": 1e9}
_SIZE_RE = re.compile(r"^[0-9]+(p|B)$")
_BOOLS = {"true": True, "1": True, "yes": True, "on": True,
          "false": False, "0": False, "no": False, "off": False}


#: Parameters named ``ns3::TypeName::Attribute`` pass through to the program as ns-3 attribute
#: defaults (``--set ns3::TcpSocket::InitialCwnd=20``), checked there against ns-3's TypeIds.
NS3_ATTRIBUTE_PREFIX = "ns3::"


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """Scenario parameters from ``--set key=value`` options (ConfigError naming a bad one)."""
    params: dict[str, str] = {}
    for item in items:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"bad --set '{item}': expected key=value")
        key, value = item.split("=", 1)
        params[key.strip()] = value.strip()
    return params


def parse_seconds(value: str) -> float | None:
    """Seconds in an ns-3 time string ("30s", "500ms"), or None if it is not one."""
    m = _TIME_RE.match(value)
    return float(m.group(1)) * _TIME_SCALE[m.group(2)] if m else None


def parse_bps(value: str) -> float | None:
    """Bits per second in an ns-3 rate string ("100Mbps"), or None."""
    m = _RATE_RE.match(value)
    return float(m.group(1)) * _RATE_SCALE[m.group(2)] if m else None


@dataclass(frozen=True)
class ParamSpec:
    """One scenario parameter as the program declares it."""

    name: str
    kind: str  # int float bool string time rate size choice
    default: str
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    qdiscs: tuple[str, ...] = ()  # the queue discs it acts on (empty: all); others refuse a non-default value

    def is_default(self, text: str) -> bool:
        """Whether a valid value (``normalise``'s text) is the default: by number for numbers
        ("-01" is -1), as the program's own check compares (ParamSet::IsDefault)."""
        if self.kind in ("int", "float"):
            return float(text) == float(self.default)
        return text == self.default

    def normalise(self, value: Any) -> str:
        """The value as the program's command line wants it; ConfigError if it is bad."""
        text = _to_text(value)
        problem = self._problem(text)
        if problem:
            raise ConfigError(f"bad value '{text}' for {self.name}: {problem}")
        return text

    def _problem(self, text: str) -> str:
        number: float | None = None
        unit = ""
        if self.kind == "int":
            if not re.fullmatch(r"[-+]?[0-9]+", text):
                return "expected an integer"
            number = float(text)
        elif self.kind == "float":
            try:
                number = float(text)
            except ValueError:
                return "expected a finite number"
            if not math.isfinite(number):
                return "expected a finite number"
        elif self.kind == "bool":
            if text.lower() not in _BOOLS:
                return "expected true or false"
        elif self.kind == "time":
            number, unit = parse_seconds(text), " s"
            if number is None:
                return "expected a time such as 30s or 500ms"
        elif self.kind == "rate":
            number, unit = parse_bps(text), " bit/s"
            if number is None:
                return "expected a rate such as 100Mbps"
        elif self.kind == "size":
            if not _SIZE_RE.match(text) or int(text[:-1]) <= 0:
                return "expected a positive size such as 1000p or 1500000B"
            if text.endswith("B") and int(text[:-1]) < 1500:
                return "a byte limit must hold one 1500-byte packet (>= 1500B)"
        elif self.kind == "choice":
            if text not in self.choices:
                return "allowed: " + ", ".join(self.choices)
        if number is not None and self.min is not None and number < self.min:
            return f"must be >= {self.min:g}{unit}"
        if number is not None and self.max is not None and number > self.max:
            return f"must be <= {self.max:g}{unit}"
        return ""


@dataclass(frozen=True)
class ScenarioSpec:
    """A scenario program and the parameters it accepts."""

    name: str
    params: dict[str, ParamSpec] = field(default_factory=dict)
    binary: str = ""  # the program, which checks ns-3 attribute names and values itself

    @property
    def qdiscs(self) -> tuple[str, ...]:
        return self.params["qdisc"].choices

    def normalise(self, values: Mapping[str, Any], hidden: Sequence[str] = ()) -> dict[str, str]:
        """Check every name and value; return them as command-line strings. ``hidden``: names
        the caller sets itself, left out of the "allowed" list of an unknown parameter."""
        out: dict[str, str] = {}
        ns3_defaults: dict[str, str] = {}
        for name, value in values.items():
            if name.startswith(NS3_ATTRIBUTE_PREFIX):  # ns-3's own attribute defaults: the program checks them
                out[name] = ns3_defaults[name] = _to_text(value)
                continue
            spec = self.params.get(name)
            if spec is None:
                raise ConfigError(
                    f"unknown parameter '{name}' for scenario {self.name}; allowed: "
                    + ", ".join(sorted(set(self.params) - set(hidden))))
            out[name] = spec.normalise(value)
        self._check_qdisc_scope(out)
        if ns3_defaults and self.binary:
            _check_ns3_defaults(self.binary, tuple(sorted(ns3_defaults.items())))
        return out

    def _check_qdisc_scope(self, values: Mapping[str, str]) -> None:
        """The program's own check (ParamSet::CheckQdiscScope), before a run starts: a parameter
        declared for some queue discs only, set to anything but its default with another one."""
        qdisc = values.get("qdisc")
        for name, value in values.items():
            spec = self.params.get(name)
            if qdisc is None or spec is None or not spec.qdiscs or spec.is_default(value) or qdisc in spec.qdiscs:
                continue
            names = " and ".join([", ".join(spec.qdiscs[:-1]), spec.qdiscs[-1]] if len(spec.qdiscs) > 1
                                 else spec.qdiscs)
            raise ConfigError(f"bad value '{value}' for {name}: it applies to {names}, not to {qdisc} "
                              f"(default {spec.default})")


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def available() -> list[str]:
    """Scenario names whose programs are installed."""
    return native.installed_scenarios()


def describe(scenario: str) -> ScenarioSpec:
    """The parameter declaration of a scenario; ConfigError if there is no such scenario."""
    names = available()
    if scenario not in names:
        raise ConfigError(f"unknown scenario '{scenario}'; allowed: {', '.join(names) or '(none built)'}")
    binary = native.scenario_binary(scenario)
    return _describe_cached(str(binary), binary.stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _describe_cached(binary: str, mtime_ns: int) -> ScenarioSpec:
    # Keyed on the binary's mtime: a rebuild invalidates the entry.
    out = subprocess.run([binary, "--describe"], check=True, capture_output=True, text=True, timeout=60)
    doc = json.loads(out.stdout)
    params = {
        p["name"]: ParamSpec(
            name=p["name"], kind=p["kind"], default=p["default"], help=p["help"],
            min=p.get("min"), max=p.get("max"), choices=tuple(p.get("choices", ())),
            qdiscs=tuple(p.get("qdiscs", ())))
        for p in doc["params"]
    }
    return ScenarioSpec(name=doc["program"], params=params, binary=binary)


@lru_cache(maxsize=256)
def _check_ns3_defaults(binary: str, defaults: tuple[tuple[str, str], ...]) -> None:
    """ConfigError with the program's own one-line message if it rejects an ns-3 attribute
    default: the program parses its arguments in order, so ``--describe`` after them checks
    them against ns-3's TypeIds (as a run would) and exits without simulating."""
    cmd = [binary, *(f"--{name}={value}" for name, value in defaults), "--describe"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        message = lines[-1] if lines else f"exit status {out.returncode}"
        raise ConfigError(message.split(": ", 1)[1] if ": " in message else message)
