"""Where the compiled parts live, and the flags to build one's own ns-3 program against them.

scikit-build-core installs the C++ parts into the environment's prefix (sys.prefix):
``lib/aqm-llm`` (libns3-aqm-llm.so), ``include/aqm-llm`` (headers, ``#include "ns3/..."``),
``libexec/aqm-llm`` (scenario programs) and ``lib/cmake/AqmLlm`` (CMake package config).
``AQM_LLM_PREFIX`` overrides the prefix.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

NS3_VERSION = "3.44"


def prefix() -> Path:
    return Path(os.environ.get("AQM_LLM_PREFIX", sys.prefix))


def libexec_dir() -> Path:
    return prefix() / "libexec" / "aqm-llm"


def library_dir() -> Path:
    return prefix() / "lib" / "aqm-llm"


def include_dir() -> Path:
    return prefix() / "include" / "aqm-llm"


def cmake_dir() -> Path:
    return prefix() / "lib" / "cmake" / "AqmLlm"


def ns3_dir() -> Path:
    """The ns3 wheel's package directory, found without importing it (importing loads cppyy)."""
    spec = importlib.util.find_spec("ns3")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the ns3 wheel is not installed: pip install --no-deps ns3==3.44.post0")
    return Path(list(spec.submodule_search_locations)[0])


def scenario_binary(scenario: str) -> Path:
    return libexec_dir() / f"aqm-llm-{scenario}"


def tool_binary(tool: str) -> Path:
    """A helper program of the module (ns3_module/tools/<tool>.cc)."""
    return libexec_dir() / "tools" / f"aqm-llm-{tool}"


def installed_scenarios() -> list[str]:
    if not libexec_dir().is_dir():
        return []
    names = [p.name.removeprefix("aqm-llm-") for p in libexec_dir().iterdir()
             if p.is_file() and p.name.startswith("aqm-llm-") and os.access(p, os.X_OK)]
    return sorted(names)


def check_installed() -> None:
    """Fail loudly if the native build is missing (used by `make build`)."""
    lib = library_dir() / "libns3-aqm-llm.so"
    if not lib.exists():
        raise SystemExit(f"aqm-llm: native library missing at {lib}; run `make build`")
    if not installed_scenarios():
        raise SystemExit(f"aqm-llm: no scenario programs in {libexec_dir()}; run `make build`")


@dataclass(frozen=True)
class BuildFlags:
    """Compiler and linker flags for a researcher's own ns-3 program using our module."""

    cxxflags: list[str]
    ldflags: list[str]
    cmake_prefix: Path

    def shell(self) -> str:
        return " ".join(self.cxxflags + self.ldflags)


NS3_LINK_MODULES = (
    "core", "network", "internet", "traffic-control", "point-to-point", "wifi",
    "applications", "mobility", "propagation", "spectrum", "stats", "antenna",
)


def build_flags() -> BuildFlags:
    ns3_lib = ns3_dir() / "lib64"
    cxx = [
        "-std=c++20",
        "-DNS3_LOG_ENABLE",  # the wheel was built with logging and asserts on
        "-DNS3_ASSERT_ENABLE",
        f"-I{include_dir()}",
        f"-I{ns3_dir() / 'include'}",
    ]
    ld = [
        "-Wl,--no-as-needed",  # keep our queue discs' TypeIds registered
        f"-L{library_dir()}",
        "-lns3-aqm-llm",
        *[str(ns3_lib / f"libns3.{NS3_VERSION}-{m}.so") for m in NS3_LINK_MODULES],
        f"-Wl,-rpath,{library_dir()}",
        f"-Wl,-rpath,{ns3_lib}",
    ]
    return BuildFlags(cxxflags=cxx, ldflags=ld, cmake_prefix=prefix())
