"""The shared-memory agent channel: layout, round trips through the C++ side, timeouts,
validation, protocol mismatch, segment hygiene.

The C++ end is the real ns3::AgentChannel in ``aqm-llm-channel-peer`` (ns3_module/tools).
"""

from __future__ import annotations

import mmap
import os
import re
import stat
import subprocess
import time
from typing import Any, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aqm_llm import channel as C
from aqm_llm.bench.peer import PeerProcess, peer_binary

# Processes whose segments this module may create; none may be left at the end.
CREATORS: set[int] = {os.getpid()}


def creator_pid(name: str) -> int:
    m = re.fullmatch(r"/aqm-llm-(\d+)-[0-9a-f]+", name)
    return int(m.group(1)) if m else -1


@pytest.fixture(scope="module", autouse=True)
def no_leaked_segments() -> Iterator[None]:
    peer_binary()  # fail early, with the hint to build, if the peer is missing
    yield
    leaked = [n for n in C.list_segments() if creator_pid(n) in CREATORS]
    assert not leaked, f"segments left in /dev/shm: {leaked}"


def expected_p_l_mark(epoch: int, tag: int) -> float:
    """What channel-peer --verify expects the agent to answer (detects cross-talk)."""
    return ((epoch + 7 * tag) % 1000) / 1000


def serve(channel: C.AgentChannel, count: int, tag: int | None = None,
          timeout: float = 10.0) -> list[int]:
    """Answer ``count`` requests; returns their epochs."""
    epochs = []
    codes = np.zeros(C.MAX_PACKETS, np.uint8)
    for _ in range(count):
        req = channel.wait_request(timeout)
        epochs.append(req.epoch)
        t = req.flags if tag is None else tag
        channel.send_reply(codes[:len(req.packets)], p_l_mark=expected_p_l_mark(req.epoch, t))
    return epochs


def fill_minimal_request(view: np.ndarray, packets: int = 3, epoch: int = 7) -> None:
    view["header"]["epoch"] = epoch
    view["header"]["sim_time_ns"] = epoch * 16_000_000
    view["series_count"] = 8
    view["window_len"] = 16
    view["series"][:] = 0.001
    view["scalar_count"] = 4
    view["scalars"][:] = 0.5
    view["packet_count"] = packets
    view["packets"]["uid"][:packets] = np.arange(100, 100 + packets)
    view["packets"]["size_bytes"][:packets] = 1500
    view["reward_count"] = 4
    view["rewards"][:] = 0.0


# ------------------------------------------------------------------------ layout


def test_layout_matches_the_header() -> None:
    assert C.REQUEST_DTYPE.itemsize == C.REQUEST_SIZE == 2808
    assert C.REPLY_DTYPE.itemsize == C.REPLY_SIZE == 560
    assert C.PACKET_DTYPE.itemsize == 32 and C.ACTION_DTYPE.itemsize == 16
    assert C.REQUEST_DTYPE["series"].shape == (C.MAX_SERIES, C.WINDOW) == (12, 16)
    assert C.REQUEST_DTYPE["scalars"].shape == (16,)
    assert C.REQUEST_DTYPE["packets"].shape == (32,)
    assert C.REQUEST_DTYPE["rewards"].shape == (8,)
    assert C.REPLY_DTYPE["actions"].shape == (32,)
    assert set(C.PACKET_DTYPE.names) == {"uid", "sojourn_s", "size_bytes", "flow_hash",
                                         "traffic_class", "ecn"}
    assert C.SEGMENT_SIZE == 4096 and C.PROTOCOL_VERSION == 1


def test_segment_is_private_uniquely_named_and_removed_on_close() -> None:
    a = C.AgentChannel.create()
    b = C.AgentChannel.create()
    try:
        assert a.name != b.name
        for ch in (a, b):
            assert re.fullmatch(rf"/aqm-llm-{os.getpid()}-[0-9a-f]{{16}}", ch.name)
            st_ = os.stat("/dev/shm" + ch.name)
            assert stat.S_IMODE(st_.st_mode) == 0o600 and st_.st_uid == os.geteuid()
            assert st_.st_size == C.SEGMENT_SIZE
    finally:
        a.close()
        b.close()
    assert not os.path.exists("/dev/shm" + a.name)
    assert not os.path.exists("/dev/shm" + b.name)


def test_context_manager_removes_segment_on_exception() -> None:
    name = ""
    with pytest.raises(RuntimeError, match="boom"):
        with C.AgentChannel.create() as ch:
            name = ch.name
            assert os.path.exists("/dev/shm" + name)
            raise RuntimeError("boom")
    assert not os.path.exists("/dev/shm" + name)


def test_in_process_round_trip_zero_copy_views() -> None:
    with C.AgentChannel.create() as server, C.AgentChannel.attach(server.name) as client:
        assert not os.path.exists("/dev/shm" + server.name)  # unlinked once attached
        assert server.peer_pid == os.getpid() and client.peer_pid == os.getpid()
        fill_minimal_request(client.request_view, packets=3, epoch=41)
        client.post_request()
        req = server.wait_request(1.0)
        assert (req.seq, req.epoch) == (1, 41)
        assert req.series.shape == (8, 16) and req.packets.shape == (3,)
        assert not req.series.flags.writeable
        # Zero copy: the view shows what the other side writes into shared memory.
        assert np.shares_memory(req.series, server.request_view)
        server.send_reply([C.Action.FORWARD, C.Action.DROP, C.Action.MARK], p_l_mark=0.25,
                          p_c_drop=0.5, p_c_mark=0.75)
        rep = client.wait_reply(1.0)
        assert rep.seq == 1 and rep.status == C.ReplyStatus.OK
        assert rep.actions["uid"].tolist() == [100, 101, 102]
        assert rep.actions["action"].tolist() == [0, 1, 2]
        assert (rep.p_l_mark, rep.p_c_drop, rep.p_c_mark) == (0.25, 0.5, 0.75)


# ------------------------------------------------------------------------ round trip through C++

finite = st.floats(allow_nan=False, allow_infinity=False)
nonneg = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)


@st.composite
def request_contents(draw: Any) -> dict[str, Any]:
    k = C.MAX_PACKETS
    return {
        "epoch": draw(st.integers(0, 2**64 - 1)),
        "sim_time_ns": draw(st.integers(0, 2**63 - 1)),
        "flags": draw(st.integers(0, 2**32 - 1)),
        "series_count": draw(st.integers(0, C.MAX_SERIES)),
        "window_len": draw(st.integers(0, C.WINDOW)),
        "scalar_count": draw(st.integers(0, C.MAX_SCALARS)),
        "packet_count": draw(st.integers(0, k)),
        "reward_count": draw(st.integers(0, C.MAX_REWARDS)),
        "series": draw(hnp.arrays(np.float64, (C.MAX_SERIES, C.WINDOW), elements=nonneg)),
        "scalars": draw(hnp.arrays(np.float64, C.MAX_SCALARS, elements=finite)),
        "rewards": draw(hnp.arrays(np.float64, C.MAX_REWARDS, elements=finite)),
        "uid": draw(hnp.arrays(np.uint64, k, elements=st.integers(0, 2**64 - 1))),
        "sojourn_s": draw(hnp.arrays(np.float64, k, elements=nonneg)),
        "size_bytes": draw(hnp.arrays(np.int32, k, elements=st.integers(0, 1 << 24))),
        "flow_hash": draw(hnp.arrays(np.uint32, k, elements=st.integers(0, 2**32 - 1))),
        "traffic_class": draw(hnp.arrays(np.uint8, k, elements=st.integers(0, 1))),
        "ecn": draw(hnp.arrays(np.uint8, k, elements=st.integers(0, 3))),
    }


@st.composite
def reply_contents(draw: Any, packet_count: int) -> dict[str, Any]:
    n = draw(st.integers(0, packet_count))
    prob = st.floats(0.0, 1.0)
    return {
        "actions": draw(hnp.arrays(np.uint8, n, elements=st.integers(0, 2))),
        "status": draw(st.sampled_from([C.ReplyStatus.OK, C.ReplyStatus.FALLBACK])),
        "p_l_mark": draw(prob), "p_c_drop": draw(prob), "p_c_mark": draw(prob),
    }


@pytest.fixture(scope="module")
def relay() -> Iterator[tuple[C.AgentChannel, C.AgentChannel]]:
    """Python is the client on A and the server on B; the C++ peer relays between them."""
    a = C.AgentChannel.create()
    b = C.AgentChannel.create()
    peer = PeerProcess.start("relay", channel=a.name, channel2=b.name, timeout=20)
    try:
        peer.expect("ready")
        yield a, b
    finally:
        a.close()
        b.close()
        assert peer.wait(10) == 0
        peer.stop()


def assert_same_fields(got: np.ndarray, sent: np.ndarray, path: str) -> None:
    """Bit-exact equality of every named field (padding bytes are not compared)."""
    if got.dtype.names is None:
        assert got.tobytes() == sent.tobytes(), path
        return
    for name in got.dtype.names:
        assert_same_fields(got[name], sent[name], f"{path}.{name}")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_field_survives_the_cpp_round_trip(relay: tuple[C.AgentChannel, C.AgentChannel],
                                                 data: Any) -> None:
    a, b = relay
    # Draw everything first: a draw that aborts the example mid-exchange would leave a
    # request outstanding.
    c = data.draw(request_contents())
    r = data.draw(reply_contents(c["packet_count"]))
    view = a.request_view
    view["header"]["epoch"] = c["epoch"]
    view["header"]["sim_time_ns"] = c["sim_time_ns"]
    view["header"]["flags"] = c["flags"]
    for key in ("series_count", "window_len", "scalar_count", "packet_count", "reward_count",
                "series", "scalars", "rewards"):
        view[key] = c[key]
    for key in ("uid", "sojourn_s", "size_bytes", "flow_hash", "traffic_class", "ecn"):
        view["packets"][key] = c[key]
    sent = view.copy()
    a.post_request()

    # The request as the C++ side validated, copied and re-sent it on channel B.
    req = b.wait_request(10.0)
    got = req.raw
    for name in C.REQUEST_DTYPE.names:
        if name != "header":
            assert_same_fields(got[name], sent[name], name)
    for name in ("epoch", "sim_time_ns", "flags"):
        assert int(got["header"][name]) == int(sent["header"][name]), name
    assert (req.epoch, req.sim_time_ns, req.flags) == (c["epoch"], c["sim_time_ns"], c["flags"])
    assert req.seq == b._native.last_request_seq
    assert req.series.shape == (c["series_count"], c["window_len"])
    assert req.packets.shape == (c["packet_count"],)
    assert np.array_equal(req.packets["uid"], c["uid"][:c["packet_count"]])
    assert np.array_equal(req.scalars, c["scalars"][:c["scalar_count"]])
    assert np.array_equal(req.rewards, c["rewards"][:c["reward_count"]])

    b.send_reply(r["actions"], p_l_mark=r["p_l_mark"], p_c_drop=r["p_c_drop"],
                 p_c_mark=r["p_c_mark"], status=r["status"])
    rep = a.wait_reply(10.0)
    n = len(r["actions"])
    assert rep.seq == a._native.last_request_seq
    assert rep.status == r["status"]
    assert np.array_equal(rep.actions["action"], r["actions"])
    assert np.array_equal(rep.actions["uid"], c["uid"][:n])
    assert (rep.p_l_mark, rep.p_c_drop, rep.p_c_mark) == (r["p_l_mark"], r["p_c_drop"],
                                                          r["p_c_mark"])


def test_cpp_creator_python_client() -> None:
    """The other direction of creation: the C++ side creates, Python attaches as client."""
    peer = PeerProcess.start("create", timeout=20)
    CREATORS.add(peer.pid)
    try:
        name = peer.expect("created")["name"]
        assert creator_pid(name) == peer.pid
        with C.AgentChannel.attach(name) as ch:
            assert not os.path.exists("/dev/shm" + name)
            assert ch.peer_pid == peer.pid
            for epoch in range(5):
                fill_minimal_request(ch.request_view, packets=4, epoch=epoch)
                ch.request_view["header"]["flags"] = 3
                rep = ch.call(5.0)
                assert rep.p_l_mark == expected_p_l_mark(epoch, 3)
                assert rep.actions["uid"].tolist() == [100, 101, 102, 103]
        assert peer.expect("done")["served"] == 5
        assert peer.wait(5) == 0
    finally:
        peer.stop()


# ------------------------------------------------------------------------ timeouts


def test_wait_request_times_out_when_peer_never_sends() -> None:
    with C.AgentChannel.create() as ch:
        peer = PeerProcess.start("idle", channel=ch.name, duration=10)
        try:
            peer.expect("ready")
            t0 = time.monotonic()
            with pytest.raises(C.ChannelTimeout, match="no request"):
                ch.wait_request(0.2)
            assert 0.19 <= time.monotonic() - t0 < 1.0
            # And as a client: a request the peer never answers.
            fill_minimal_request(ch.request_view)
            ch.post_request()
            t0 = time.monotonic()
            with pytest.raises(C.ChannelTimeout):
                ch.wait_reply(0.2)
            assert 0.19 <= time.monotonic() - t0 < 1.0
        finally:
            peer.stop()


def test_cpp_client_times_out_then_discards_the_late_reply() -> None:
    with C.AgentChannel.create() as ch:
        peer = PeerProcess.start("client", channel=ch.name, rounds=3, timeout=0.4, packets=2,
                                 verify=True, tag=5)
        try:
            req = ch.wait_request(5.0)
            assert req.epoch == 0
            late = peer.expect("timeout", 5.0)
            assert 0.39 <= late["elapsed_s"] < 1.2
            assert "no reply to request 1" in late["message"]
            # Answer request 1 late: the client discards it and sends request 2.
            ch.send_reply([0, 0], p_l_mark=expected_p_l_mark(0, 5))
            assert serve(ch, 2, tag=5) == [1, 2]
            done = peer.expect("done")
            assert (done["ok"], done["timeouts"], done["mismatches"]) == (2, 1, 0)
        finally:
            peer.stop()


def test_peer_that_dies_before_attaching_is_noticed() -> None:
    with C.AgentChannel.create() as ch:
        proc = subprocess.Popen(["sleep", "0.2"])
        try:
            ch.watch_peer(proc.pid)
            t0 = time.monotonic()
            with pytest.raises(C.PeerGone, match="exited before attaching"):
                ch.wait_request(10.0)  # the child stays a zombie (not reaped): still noticed
            assert time.monotonic() - t0 < 1.0
        finally:
            proc.wait()


# ------------------------------------------------------------------------ validation

BAD_REQUESTS = {
    "packets": "packet_count = 33 exceeds capacity 32",
    "series": "series_count = 13 exceeds capacity 12",
    "window": "window_len = 17 exceeds capacity 16",
    "scalars": "scalar_count = 1000000 exceeds capacity 16",
    "rewards": "reward_count = 4294967295 exceeds capacity 8",
    "nan": "series[2][3] (queue_bytes) is NaN",
    "inf": "scalars[2] is infinite",
    "negsize": "packets[1].size_bytes = -5 is negative",
    "class": "packets[2].traffic_class = 7",
    "ecn": "packets[0].ecn = 4",
    "negtime": "sim_time_ns = -1 is negative",
}


@pytest.mark.parametrize("kind", sorted(BAD_REQUESTS))
def test_invalid_request_from_cpp_raises(kind: str) -> None:
    with C.AgentChannel.create() as ch:
        peer = PeerProcess.start("bad", channel=ch.name, bad=kind)
        try:
            with pytest.raises(C.InvalidMessage) as err:
                ch.wait_request(5.0)
            assert BAD_REQUESTS[kind] in str(err.value)
            ch.reject()
            reply = peer.expect("reply")
            assert reply["status"] == "Invalid" and "failed on request 1" in reply["message"]
            assert peer.wait(5) == 5
        finally:
            peer.stop()


BAD_REPLIES: list[tuple[str, str]] = [
    ("nan", r"p_l_mark is NaN"),
    ("prob", r"p_c_drop = 1.5 is not a probability in \[0, 1\]"),
    ("capacity", r"action_count = 33 exceeds capacity 32"),
    ("count", r"action_count = 4 exceeds the request's packet_count 3"),
    ("uid", r"actions\[1\]\.uid = \d+ does not match packets\[1\]\.uid = \d+"),
    ("code", r"actions\[0\]\.action = 7 is not 0 \(forward\)"),
    ("status", r"status = 9 is not 0 \(ok\)"),
]


def test_invalid_replies_are_reported_by_the_cpp_side() -> None:
    with C.AgentChannel.create() as ch:
        peer = PeerProcess.start("client", channel=ch.name, rounds=len(BAD_REPLIES), packets=3,
                                 timeout=5)
        try:
            rv = ch.reply_view
            for kind, pattern in BAD_REPLIES:
                req = ch.wait_request(5.0)
                rv["status"] = 0
                rv["action_count"] = 3
                rv["actions"]["uid"][:3] = req.packets["uid"]
                rv["actions"]["action"][:3] = 0
                rv["p_l_mark"] = rv["p_c_drop"] = rv["p_c_mark"] = 0.0
                if kind == "nan":
                    rv["p_l_mark"] = np.nan
                elif kind == "prob":
                    rv["p_c_drop"] = 1.5
                elif kind == "capacity":
                    rv["action_count"] = 33
                elif kind == "count":
                    rv["action_count"] = 4
                elif kind == "uid":
                    rv["actions"]["uid"][1] = req.packets["uid"][1] + 1
                elif kind == "code":
                    rv["actions"]["action"][0] = 7
                elif kind == "status":
                    rv["status"] = 9
                ch.post_reply(validate=False)  # bypass our own check: the C++ side must catch it
                event = peer.expect("invalid")
                assert event["error"] == "BadMessage"
                assert re.search(pattern, event["message"]), (kind, event["message"])
            assert peer.expect("done")["invalid"] == len(BAD_REPLIES)
        finally:
            peer.stop()


def test_python_side_validates_what_it_sends() -> None:
    with C.AgentChannel.create() as server, C.AgentChannel.attach(server.name) as client:
        fill_minimal_request(client.request_view, packets=3)
        client.request_view["packet_count"] = 40
        with pytest.raises(C.InvalidMessage, match="packet_count = 40 exceeds capacity 32"):
            client.post_request()
        client.request_view["packet_count"] = 3
        client.request_view["rewards"][1] = np.inf
        with pytest.raises(C.InvalidMessage, match=r"rewards\[1\] is infinite"):
            client.post_request()
        client.request_view["rewards"][1] = 0.0
        client.post_request()
        server.wait_request(1.0)
        with pytest.raises(C.InvalidMessage, match="p_c_mark is NaN"):
            server.send_reply([0, 0, 0], p_c_mark=float("nan"))
        with pytest.raises(C.InvalidMessage, match=r"actions\[2\].action = 7"):
            server.send_reply(np.array([0, 1, 7]))
        with pytest.raises(C.InvalidMessage, match="4 actions for a request with 3 packets"):
            server.send_reply([0, 0, 0, 0])
        with pytest.raises(C.InvalidMessage, match="negative action"):
            server.send_reply([0, -1])
        with pytest.raises(C.InvalidMessage, match="1-d integer"):
            server.send_reply(np.array([0.5]))
        # Nothing was sent: the request is still outstanding and a good reply goes through.
        with pytest.raises(C.ChannelTimeout):
            client.wait_reply(0.05)
        server.send_reply([2, 2, 2], p_c_mark=1.0)
        assert client.wait_reply(1.0).actions["action"].tolist() == [2, 2, 2]
        # The stand-alone validators (used e.g. on logged messages).
        with pytest.raises(C.InvalidMessage, match="packet_count"):
            bad = np.zeros((), C.REQUEST_DTYPE)
            bad["packet_count"] = 99
            C.validate_request(bad)
        C.validate_request(np.zeros((), C.REQUEST_DTYPE))
        C.validate_reply(np.zeros((), C.REPLY_DTYPE))


# ------------------------------------------------------------------------ protocol mismatch


def tamper(name: str, field: str, value: int) -> None:
    offset = C.SEGMENT_HEADER_DTYPE.fields[field][1]
    dtype = C.SEGMENT_HEADER_DTYPE.fields[field][0]
    with open("/dev/shm" + name, "r+b") as f, mmap.mmap(f.fileno(), C.SEGMENT_SIZE) as m:
        m[offset:offset + dtype.itemsize] = np.array(value, dtype).tobytes()


def test_protocol_mismatch_is_reported_on_both_sides() -> None:
    with C.AgentChannel.create() as ch:
        tamper(ch.name, "protocol_version", 99)
        peer = PeerProcess.start("idle", channel=ch.name, duration=5)
        try:
            err = peer.expect("error")
            assert err["error"] == "ProtocolMismatch"
            assert "v1 " in err["message"] and "v99 " in err["message"]
            assert peer.wait(5) == 6
        finally:
            peer.stop()
        t0 = time.monotonic()
        with pytest.raises(C.ProtocolMismatch, match="protocol mismatch"):
            ch.wait_request(5.0)
        assert time.monotonic() - t0 < 0.5


@pytest.mark.parametrize("field,value,match", [
    ("protocol_version", 2, "protocol mismatch.*v2"),
    ("layout_hash", 12345, "protocol mismatch.*layout 0x0000000000003039"),
    ("request_size", 9999, "protocol mismatch.*request 9999 B"),
    ("magic", 0, "bad magic"),
])
def test_attach_refuses_a_different_layout(field: str, value: int, match: str) -> None:
    with C.AgentChannel.create() as ch:
        tamper(ch.name, field, value)
        with pytest.raises(C.ProtocolMismatch, match=match):
            C.AgentChannel.attach(ch.name)


def test_attach_errors() -> None:
    with pytest.raises(C.ChannelError, match="No such file"):
        C.AgentChannel.attach("/aqm-llm-1-0000000000000000")
    with C.AgentChannel.create() as ch:
        with C.AgentChannel.attach(ch.name):
            # Exclusive: the first attacher unlinked the name, nobody else can attach.
            with pytest.raises(C.ChannelError, match="No such file"):
                C.AgentChannel.attach(ch.name)
    with pytest.raises(ValueError):
        C.ChannelOptions(liveness_interval_s=0.0)


# ------------------------------------------------------------------------ stale segments


def test_stale_segments_of_dead_processes_are_removed() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"/dev/shm/aqm-llm-{dead.pid}-0123456789abcdef"
    alive = f"/dev/shm/aqm-llm-{os.getpid()}-fedcba9876543210"
    for path in (stale, alive):
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.ftruncate(fd, C.SEGMENT_SIZE)
        os.close(fd)
    try:
        with C.AgentChannel.create():
            pass  # create() sweeps first
        assert not os.path.exists(stale)
        assert os.path.exists(alive)  # its creator (this process) is alive
    finally:
        for path in (stale, alive):
            if os.path.exists(path):
                os.unlink(path)
