"""``aqm-llm bench channel``: the shared-memory channel against ZeroMQ and a Unix socket.

The ns-3 end is always the C++ program ``aqm-llm-channel-peer`` acting as the queue disc (it
times every exchange); the agent end is this Python process. All transports carry the same
full-size messages (the Request/Reply structs of agent-messages.h, 32 packet descriptors),
validated on both ends, and the agent fills a reply for every descriptor.

Three measurements per transport:
  1. round-trip latency p50/p99 and round trips per second, the agent answering at once;
  2. CPU time the ns-3 side burns while the agent takes ``--slow-ms`` (50 ms) to answer;
  3. CPU time the agent burns while the ns-3 side takes 50 ms to send the next request.
A reference row shows the same channel with busy-polling only (as ns3-ai waits).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import shlex
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from aqm_llm import channel as C
from aqm_llm.bench import report
from aqm_llm.bench.machine import machine_info
from aqm_llm.bench.peer import PeerProcess

SECTION_BEGIN = "<!-- bench-channel:begin -->"
SECTION_END = "<!-- bench-channel:end -->"
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class BenchConfig:
    rounds: int
    warmup: int
    slow_rounds: int
    slow_ms: float
    packets: int
    transports: tuple[str, ...]
    busy_reference: bool
    spin_us: float


@dataclass
class Row:
    transport: str
    ns3_side: str
    agent_side: str
    rtt_p50_us: float | None = None
    rtt_p99_us: float | None = None
    per_s: float | None = None
    ns3_cpu_ms: float | None = None  # CPU ms per wait while the agent takes slow_ms
    agent_cpu_ms: float | None = None  # CPU ms per wait while ns-3 takes slow_ms
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- agent side


def _p_l_mark(epoch: int, tag: int) -> float:
    return ((epoch + 7 * tag) % 1000) / 1000  # what channel-peer --verify expects


class ByteAgent:
    """The agent's work on raw message bytes (ZeroMQ, Unix socket): the same numpy views,
    the same validation as the shared-memory path, one reply per descriptor."""

    def __init__(self) -> None:
        self.req_buf = bytearray(C.REQUEST_SIZE)
        self.rep_buf = bytearray(C.REPLY_SIZE)
        req = np.frombuffer(self.req_buf, np.uint8).view(C.REQUEST_DTYPE).reshape(())
        rep = np.frombuffer(self.rep_buf, np.uint8).view(C.REPLY_DTYPE).reshape(())
        self.req_header = req["header"]
        self.req_count = req["packet_count"]
        self.req_uid = req["packets"]["uid"]
        self.rep = rep
        self.rep_uid = rep["actions"]["uid"]
        self.rep_action = rep["actions"]["action"]

    def answer(self) -> bytearray:
        C.validate_request(self.req_buf)
        n = min(int(self.req_count), C.MAX_PACKETS)
        header = self.req_header
        rep = self.rep
        rep["seq"] = header["seq"]
        rep["status"] = 0
        rep["action_count"] = n
        self.rep_uid[:n] = self.req_uid[:n]
        self.rep_action[:n] = C.Action.FORWARD
        rep["p_l_mark"] = _p_l_mark(int(header["epoch"]), int(header["flags"]))
        C.validate_reply(self.rep_buf, self.req_buf)
        return self.rep_buf


def serve_shm(ch: C.AgentChannel, count: int, delay_s: float) -> None:
    codes = np.zeros(C.MAX_PACKETS, np.uint8)
    for _ in range(count):
        r = ch.wait_request(TIMEOUT_S)
        if delay_s:
            time.sleep(delay_s)
        ch.send_reply(codes[:len(r.packets)], p_l_mark=_p_l_mark(r.epoch, r.flags))


# ---------------------------------------------------------------------------- one phase


@dataclass
class PhaseResult:
    done: dict[str, float]  # the C++ side's summary
    agent_cpu_s: float  # this process's CPU time while serving the measured rounds


def run_phase(transport: str, cfg: BenchConfig, rounds: int, warmup: int, agent_delay_s: float,
              think_ms: float, busy: bool = False) -> PhaseResult:
    spin_us = 1e6 if busy else cfg.spin_us
    peer_opts: dict[str, object] = dict(rounds=rounds, warmup=warmup, packets=cfg.packets,
                                        think_ms=think_ms or None, timeout=TIMEOUT_S,
                                        verify=True, spin_us=spin_us)
    if transport == "shm":
        ch = C.AgentChannel.create(options=C.ChannelOptions(spin_s=min(spin_us * 1e-6, 1.0)))
        with ch:
            peer = PeerProcess.start("client", channel=ch.name, **peer_opts)
            ch.watch_peer(peer.pid)
            with peer:
                serve_shm(ch, warmup, agent_delay_s)
                cpu0 = time.process_time()
                serve_shm(ch, rounds, agent_delay_s)
                cpu = time.process_time() - cpu0
                done = peer.expect("done", TIMEOUT_S)
                peer.wait()
    elif transport == "zmq":
        import zmq

        ctx = zmq.Context()
        sock = ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, int(TIMEOUT_S * 1000))
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        agent = ByteAgent()

        def serve_zmq(count: int) -> None:
            for _ in range(count):
                if sock.recv_into(agent.req_buf) != C.REQUEST_SIZE:
                    raise C.InvalidMessage("short request")
                rep = agent.answer()
                if agent_delay_s:
                    time.sleep(agent_delay_s)
                sock.send(rep, copy=True)

        try:
            peer = PeerProcess.start("client", transport="zmq", endpoint=f"tcp://127.0.0.1:{port}",
                                     libzmq=libzmq_path(), **peer_opts)
            with peer:
                peer.expect("ready", TIMEOUT_S)
                serve_zmq(warmup)
                cpu0 = time.process_time()
                serve_zmq(rounds)
                cpu = time.process_time() - cpu0
                done = peer.expect("done", TIMEOUT_S)
                peer.wait()
        finally:
            sock.close()
            ctx.term()
    elif transport == "uds":
        tmp = tempfile.mkdtemp(prefix="aqm-llm-bench-")
        path = os.path.join(tmp, "agent.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        server.settimeout(TIMEOUT_S)
        agent = ByteAgent()
        try:
            peer = PeerProcess.start("client", transport="uds", endpoint=path, **peer_opts)
            with peer:
                conn, _ = server.accept()
                conn.settimeout(TIMEOUT_S)
                view = memoryview(agent.req_buf)

                def serve_uds(count: int) -> None:
                    for _ in range(count):
                        got = 0
                        while got < C.REQUEST_SIZE:
                            n = conn.recv_into(view[got:], C.REQUEST_SIZE - got)
                            if n == 0:
                                raise C.PeerGone("ns-3 side closed the socket",
                                                 closed_cleanly=False)
                            got += n
                        rep = agent.answer()
                        if agent_delay_s:
                            time.sleep(agent_delay_s)
                        conn.sendall(rep)

                with conn:
                    serve_uds(warmup)
                    cpu0 = time.process_time()
                    serve_uds(rounds)
                    cpu = time.process_time() - cpu0
                    done = peer.expect("done", TIMEOUT_S)
                    peer.wait()
        finally:
            server.close()
            os.unlink(path)
            os.rmdir(tmp)
    else:
        raise ValueError(f"unknown transport {transport!r}")
    if done.get("ok") != rounds + warmup or done.get("mismatches"):
        raise RuntimeError(f"{transport}: the ns-3 side reports {done}")
    return PhaseResult(done=done, agent_cpu_s=cpu)


def libzmq_path() -> str:
    """The libzmq shared library that pyzmq ships (loaded by the C++ side with dlopen)."""
    import zmq

    site = Path(zmq.__file__).resolve().parent.parent
    for pattern in ("pyzmq.libs/libzmq*.so*", "zmq/.libs/libzmq*.so*", "zmq/libzmq*.so*"):
        found = sorted(site.glob(pattern))
        if found:
            return str(found[0])
    for candidate in ("/usr/lib/x86_64-linux-gnu/libzmq.so.5", "/usr/lib64/libzmq.so.5"):
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError("no libzmq shared library found (pyzmq.libs or the system)")


# ---------------------------------------------------------------------------- rows


def measure(transport: str, cfg: BenchConfig, busy: bool = False) -> Row:
    row = describe(transport, busy)
    slow_s = cfg.slow_ms / 1000
    if not busy:
        fast = run_phase(transport, cfg, cfg.rounds, cfg.warmup, 0.0, 0.0)
        row.rtt_p50_us = fast.done["rtt_p50_us"]
        row.rtt_p99_us = fast.done["rtt_p99_us"]
        row.per_s = fast.done["msgs_per_s"]
    agent_slow = run_phase(transport, cfg, cfg.slow_rounds, 1, slow_s, 0.0, busy)
    row.ns3_cpu_ms = agent_slow.done["cpu_s"] / cfg.slow_rounds * 1e3
    ns3_slow = run_phase(transport, cfg, cfg.slow_rounds, 1, 0.0, cfg.slow_ms, busy)
    row.agent_cpu_ms = ns3_slow.agent_cpu_s / cfg.slow_rounds * 1e3
    return row


def describe(transport: str, busy: bool) -> Row:
    if transport == "shm":
        if busy:
            return Row("shm, busy-poll only (ns3-ai style)", "C++ AgentChannel",
                       "Python aqm_llm.channel")
        return Row("shm (aqm-llm channel)", "C++ AgentChannel", "Python aqm_llm.channel")
    if transport == "zmq":
        import zmq

        return Row("ZeroMQ REQ/REP, TCP loopback (ns3-gym)", f"C++ libzmq {zmq.zmq_version()}",
                   f"Python pyzmq {zmq.pyzmq_version()}")
    if transport == "uds":
        return Row("Unix-domain stream socket", "C++ socket(2)", "Python socket")
    raise ValueError(transport)


# ---------------------------------------------------------------------------- report


def render(rows: list[Row], cfg: BenchConfig, machine: dict[str, str], command: str,
           load_after: str) -> str:
    from rich.console import Console
    from rich.table import Table

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else fmt.format(v)

    table = Table(title=f"one request ({C.REQUEST_SIZE} B, {cfg.packets} packet descriptors) "
                        f"+ one reply ({C.REPLY_SIZE} B) per round trip")
    table.add_column("transport", no_wrap=True)
    table.add_column("ns-3 side", no_wrap=True)
    table.add_column("agent side", no_wrap=True)
    table.add_column("RTT p50 µs", justify="right")
    table.add_column("RTT p99 µs", justify="right")
    table.add_column("round trips/s", justify="right")
    table.add_column("ns-3 CPU ms/wait", justify="right", no_wrap=True)
    table.add_column("agent CPU ms/wait", justify="right", no_wrap=True)
    for r in rows:
        table.add_row(r.transport, r.ns3_side, r.agent_side, num(r.rtt_p50_us, "{:.1f}"),
                      num(r.rtt_p99_us, "{:.1f}"), num(r.per_s, "{:,.0f}"),
                      num(r.ns3_cpu_ms, "{:.3f}"), num(r.agent_cpu_ms, "{:.3f}"))
    console = Console(record=True, width=160, file=io.StringIO(), color_system=None)
    console.print(f"machine: {machine['cpu']}; {machine['os']}")
    console.print(f"load average (1/5/15 min) before: {machine['load']}, after: {load_after}")
    console.print(f"command: {command}")
    console.print(table)
    slow = f"{cfg.slow_ms:g} ms"
    console.print(
        f"RTT and round trips/s: timed by the ns-3 side (C++) around each exchange, "
        f"{cfg.rounds} rounds after {cfg.warmup} warm-up, the agent answering at once; they "
        f"include validating both messages and the agent's Python work (numpy views onto the "
        f"request, one action per descriptor).")
    console.print(
        f"ns-3 CPU ms/wait: CPU time (all threads) the ns-3 process spends per exchange while "
        f"the agent takes {slow} to answer; agent CPU ms/wait: the agent process while the ns-3 "
        f"side takes {slow} to send the next request ({cfg.slow_rounds} exchanges each). The "
        f"shm channel spins at most {cfg.spin_us:g} µs (adaptive), then sleeps on a futex; a "
        f"watchdog thread sleeps on the peer's pidfd. Busy-poll: both sides spin until the "
        f"message arrives (latency not measured: two spinning processes on shared cores "
        f"measure the scheduler).")
    for r in rows:
        for note in r.notes:
            console.print(f"note ({r.transport}): {note}")
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def save_section(path: Path, text: str) -> None:
    report.save_section(path, text, SECTION_BEGIN, SECTION_END,
                        "# Agent channel benchmark\n\nOutput of `aqm-llm bench channel` (regenerate "
                        "with `aqm-llm bench channel --save docs/bench-channel.md`).\n\n")


# ---------------------------------------------------------------------------- entry point


def parse(argv: list[str]) -> tuple[BenchConfig, Path | None]:
    p = argparse.ArgumentParser(prog="aqm-llm bench channel", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=20000, help="timed round trips per transport")
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--slow-rounds", type=int, default=20,
                   help="exchanges in each CPU measurement")
    p.add_argument("--slow-ms", type=float, default=50.0, help="the slow side's delay")
    p.add_argument("--packets", type=int, default=C.MAX_PACKETS, choices=range(C.MAX_PACKETS + 1),
                   metavar=f"0..{C.MAX_PACKETS}")
    p.add_argument("--transports", default="shm,zmq,uds",
                   help="comma-separated subset of shm,zmq,uds")
    p.add_argument("--no-busy", action="store_true",
                   help="skip the busy-poll reference row")
    p.add_argument("--spin-us", type=float, default=C.ChannelOptions().spin_s * 1e6)
    p.add_argument("--quick", action="store_true", help="few rounds (a smoke test)")
    report.add_save_options(p, "docs/bench-channel.md")
    a = p.parse_args(argv)
    transports = tuple(t.strip() for t in a.transports.split(",") if t.strip())
    for t in transports:
        if t not in ("shm", "zmq", "uds"):
            p.error(f"unknown transport {t!r} (shm, zmq, uds)")
    if a.quick:
        a.rounds, a.warmup, a.slow_rounds = min(a.rounds, 300), min(a.warmup, 30), 2
    cfg = BenchConfig(rounds=a.rounds, warmup=a.warmup, slow_rounds=a.slow_rounds,
                      slow_ms=a.slow_ms, packets=a.packets, transports=transports,
                      busy_reference=not a.no_busy and "shm" in transports, spin_us=a.spin_us)
    save = report.save_path(a, "docs/bench-channel.md")
    return cfg, save


def main(argv: list[str]) -> int:
    cfg, save = parse(argv)
    machine = machine_info()
    command = "aqm-llm bench channel" + ("" if not argv else " " + shlex.join(argv))
    steps: list[tuple[str, Callable[[], Row]]] = [
        (t, lambda t=t: measure(t, cfg)) for t in cfg.transports]
    if cfg.busy_reference:
        steps.append(("shm busy-poll", lambda: measure("shm", cfg, busy=True)))
    rows: list[Row] = []
    for label, step in steps:
        print(f"bench channel: {label} ...", file=sys.stderr, flush=True)
        try:
            rows.append(step())
        except FileNotFoundError as e:
            row = describe(label.split()[0], busy=False)
            row.notes.append(f"not measured: {e}")
            rows.append(row)
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = render(rows, cfg, machine, command, load_after)
    return report.publish(text, save, save_section)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
