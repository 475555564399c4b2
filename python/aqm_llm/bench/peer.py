"""Driving ``aqm-llm-channel-peer`` (ns3_module/tools/channel-peer.cc): the ns-3 end of the agent
channel as a small C++ program, used by the channel benchmark and tests.

It prints one JSON object per line; :class:`PeerProcess` reads them on a thread, stamping each
with the monotonic time it arrived (``"_t"``), so callers can time what the peer reports.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aqm_llm import native

PEER_ENV = "AQM_LLM_CHANNEL_PEER"  # override the program's path (development builds)


def peer_binary() -> Path:
    """The installed aqm-llm-channel-peer (or ``$AQM_LLM_CHANNEL_PEER``)."""
    override = os.environ.get(PEER_ENV)
    path = Path(override) if override else native.tool_binary("channel-peer")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise FileNotFoundError(f"channel peer program not found at {path}; run `make build`")
    return path


@dataclass
class PeerProcess:
    """A running aqm-llm-channel-peer and the events it printed so far."""

    popen: subprocess.Popen[str]
    args: list[str]
    events: "queue.Queue[dict[str, Any]]" = field(default_factory=queue.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)
    stderr_tail: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, mode: str, **options: Any) -> PeerProcess:
        """``PeerProcess.start("client", channel=name, rounds=100, verify=True)`` runs
        ``aqm-llm-channel-peer --mode=client --channel=... --rounds=100 --verify``."""
        args = [str(peer_binary()), f"--mode={mode}"]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is not None and value is not False:
                args.append(f"{flag}={value}")
        popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 bufsize=1)
        peer = cls(popen=popen, args=args)
        threading.Thread(target=peer._read_stdout, daemon=True).start()
        threading.Thread(target=peer._read_stderr, daemon=True).start()
        return peer

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            now = time.monotonic()
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "text", "text": line.rstrip("\n")}
            event["_t"] = now
            self.events.put(event)
        self.events.put({"event": "eof", "_t": time.monotonic()})

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.stderr_tail = (self.stderr_tail + [line.rstrip("\n")])[-20:]

    def expect(self, event: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next event named ``event`` (earlier other events are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                got = self.events.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                raise TimeoutError(f"peer printed no {event!r} in {timeout} s; "
                                   f"saw {self.seen[-5:]}; stderr {self.stderr_tail}") from None
            self.seen.append(got)
            if got["event"] == event:
                return got
            if got["event"] == "eof":
                raise RuntimeError(f"peer exited (rc {self.popen.wait()}) without {event!r}; "
                                   f"saw {self.seen[-5:]}; stderr {self.stderr_tail}")

    def wait(self, timeout: float = 10.0) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self) -> None:
        """Kill (if still running) and reap."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
