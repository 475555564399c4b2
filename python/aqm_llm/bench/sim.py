"""`aqm-llm bench sim`: how fast the scenario programs simulate, and how much memory they take.

Runs each scenario once per queue disc for a fixed simulated time, one at a time, and reports
wall seconds per simulated second and the program's peak RSS, with the machine and command.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aqm_llm.bench.machine import machine_info
from aqm_llm.errors import ConfigError
from aqm_llm.runner import RunSpec, build_command
from aqm_llm.scenarios import parse_seconds


def measure(scenario: str, qdisc: str, duration: str, extra: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.json"
        params = {"duration": duration, "warmup": "1s", **extra}
        cmd = build_command(RunSpec(scenario, qdisc, 1, params), output=out)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        # wait4 gives this child's own resource usage (peak RSS of this run alone).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} exited with {proc.returncode}")
        metrics = json.loads(out.read_text())
    sim_s = parse_seconds(duration) or 1.0
    return {"wall_s": wall, "wall_per_sim_s": wall / sim_s,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
            "goodput_mbps": metrics["total_goodput_mbps"]}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="aqm-llm bench sim", description=__doc__)
    ap.add_argument("--scenarios", default="dumbbell,wifi")
    ap.add_argument("--qdiscs", default="fq-codel-l4s,dualpi2")
    ap.add_argument("--duration", default="10s")
    args = ap.parse_args(argv)
    if parse_seconds(args.duration) is None:
        raise ConfigError(f"bad value '{args.duration}' for --duration: expected a time such as 10s")
    from rich.console import Console
    from rich.table import Table

    machine = machine_info()
    table = Table(title=f"simulation speed, {args.duration} simulated, one run at a time")
    for col in ("scenario", "qdisc", "goodput Mb/s", "wall s", "wall s / sim s", "peak RSS MB"):
        table.add_column(col, justify="left" if col in ("scenario", "qdisc") else "right")
    for scenario in args.scenarios.split(","):
        for qdisc in args.qdiscs.split(","):
            r = measure(scenario, qdisc, args.duration, {})
            table.add_row(scenario, qdisc, f"{r['goodput_mbps']:.1f}", f"{r['wall_s']:.1f}",
                          f"{r['wall_per_sim_s']:.2f}", f"{r['peak_rss_mb']:.0f}")
    console = Console(width=140)
    console.print(f"machine: {machine['cpu']}; {machine['os']}; load {machine['load']}")
    console.print("command: aqm-llm bench sim " + shlex.join(argv))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
