"""The agent's end of the shared-memory channel to the ns-3 queue disc.

One channel per run. The agent creates it (a POSIX shared-memory segment, mode 0600, named
``/aqm-llm-<pid>-<random>``) and passes :attr:`AgentChannel.name` to the ns-3 program, which
attaches (``ns3::AgentChannel::Attach``) and then sends one request per decision epoch::

    with AgentChannel.create() as channel:
        proc = subprocess.Popen([scenario, f"--agentChannel={channel.name}", ...])
        channel.watch_peer(proc.pid)          # notice a crash before it attaches
        while True:
            try:
                req = channel.wait_request(timeout=60.0)
            except PeerGone as gone:          # gone.closed_cleanly: the run ended normally
                break
            actions = policy(req.series, req.scalars, req.packets, req.rewards)
            channel.send_reply(actions, p_l_mark=0.1, p_c_drop=0.01, p_c_mark=0.01)

A :class:`Request` holds zero-copy, read-only numpy views onto the shared memory, valid until
the reply is sent. The message layout (dtypes below) comes from ``agent-messages.h`` through
the extension, so C++ and Python cannot disagree; the ns-3 side checks version, sizes and a
layout fingerprint when it attaches (a mismatch raises :class:`ProtocolMismatch` here).

Every wait has a timeout (:class:`ChannelTimeout`); a peer that closes, exits or is killed
raises :class:`PeerGone` within milliseconds (a watchdog thread sleeps on the peer's pidfd;
before it attached, the pid given to :meth:`AgentChannel.watch_peer` is polled every
``liveness_interval_s``); malformed messages raise
:class:`InvalidMessage` naming the field. Segment names are unlinked on close, at exit and on
SIGINT/SIGTERM/SIGHUP (the handler unlinks, then behaves as before); the ns-3 side unlinks the
name as soon as it has attached, and stale segments of dead processes are removed on create.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from dataclasses import dataclass, field
from enum import IntEnum
from types import FrameType, TracebackType
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from aqm_llm import _channel

__all__ = [
    "ACTION_DTYPE", "PACKET_DTYPE", "REPLY_DTYPE", "REQUEST_DTYPE", "REQUEST_HEADER_DTYPE",
    "SEGMENT_HEADER_DTYPE", "Action", "AgentChannel", "ChannelError", "ChannelOptions",
    "ChannelTimeout", "InvalidMessage", "PeerGone", "ProtocolMismatch", "Reply", "ReplyStatus",
    "Request", "Reward", "Scalar", "Series", "TrafficClass", "list_segments",
    "remove_stale_segments", "validate_reply", "validate_request",
]

# ---------------------------------------------------------------------------- exceptions


class ChannelError(RuntimeError):
    """Any failure of the agent channel."""


class ChannelTimeout(ChannelError, TimeoutError):
    """The peer did not answer (or attach, or send a request) within the timeout."""


class PeerGone(ChannelError):
    """The peer closed the channel or its process died; the channel is unusable now."""

    def __init__(self, message: str, *, closed_cleanly: bool) -> None:
        super().__init__(message)
        self.closed_cleanly = closed_cleanly


class ProtocolMismatch(ChannelError):
    """The two sides were built from different message layouts or protocol versions."""


class InvalidMessage(ChannelError, ValueError):
    """A message failed validation (count above capacity, NaN, negative size, ...)."""


# ---------------------------------------------------------------------------- constants

PROTOCOL_VERSION: int = _channel.PROTOCOL_VERSION
WINDOW: int = _channel.WINDOW
MAX_SERIES: int = _channel.MAX_SERIES
MAX_SCALARS: int = _channel.MAX_SCALARS
MAX_PACKETS: int = _channel.MAX_PACKETS
MAX_REWARDS: int = _channel.MAX_REWARDS
REQUEST_SIZE: int = _channel.REQUEST_SIZE
REPLY_SIZE: int = _channel.REPLY_SIZE
SEGMENT_SIZE: int = _channel.SEGMENT_SIZE
SEGMENT_PREFIX = "aqm-llm-"
SHM_DIR = "/dev/shm"


class Series(IntEnum):
    """Rows of ``Request.series``."""

    L_SOJOURN = 0
    C_SOJOURN = 1
    QUEUE_BYTES = 2
    ARRIVAL_RATE = 3
    DEPARTURE_RATE = 4
    MARKS = 5
    DROPS = 6
    CAPACITY = 7


class Scalar(IntEnum):
    """Indices into ``Request.scalars``."""

    BURST_ALLOWANCE = 0
    P_PRIME = 1
    P_L = 2
    P_C = 3


class Reward(IntEnum):
    """Indices into ``Request.rewards``."""

    UTILIZATION = 0
    L_DELAY = 1
    C_DELAY = 2
    LOSS = 3


class TrafficClass(IntEnum):
    L = 0
    C = 1


class Action(IntEnum):
    FORWARD = 0
    DROP = 1
    MARK = 2


class ReplyStatus(IntEnum):
    OK = 0
    FALLBACK = 1  # the agent asks the queue disc to use its fallback controller this epoch
    ERROR = 2  # the agent rejected the request


class _Status(IntEnum):
    OK = 0
    TIMEOUT = 1
    PEER_GONE = 2
    INVALID = 3
    INTERRUPTED = 4


def _check_enums() -> None:
    native = _channel.enums()
    for key, enum in (("series", Series), ("scalar", Scalar), ("reward", Reward),
                      ("traffic_class", TrafficClass), ("action", Action),
                      ("reply_status", ReplyStatus), ("status", _Status)):
        ours = {m.name: int(m.value) for m in enum}
        if ours != dict(native[key]):
            raise ProtocolMismatch(f"aqm_llm.channel.{enum.__name__} {ours} differs from the "
                                   f"extension's {dict(native[key])}: rebuild (make build)")


_check_enums()
_ERROR_KIND: dict[int, str] = {int(v): str(k) for k, v in _channel.enums()["error"].items()}

# ---------------------------------------------------------------------------- dtypes


def _build_dtypes() -> dict[str, np.dtype[Any]]:
    dtypes: dict[str, np.dtype[Any]] = {}
    for key, spec in _channel.layout().items():  # nested structs come first
        names, formats, offsets = [], [], []
        for name, offset, base, shape in spec["fields"]:
            sub: Any = dtypes[base] if base in dtypes else np.dtype(base)
            names.append(name)
            formats.append((sub, tuple(shape)) if shape else sub)
            offsets.append(offset)
        dtypes[key] = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                                "itemsize": spec["itemsize"]})
    return dtypes


_DTYPES = _build_dtypes()
PACKET_DTYPE: np.dtype[Any] = _DTYPES["packet"]
ACTION_DTYPE: np.dtype[Any] = _DTYPES["action"]
REQUEST_HEADER_DTYPE: np.dtype[Any] = _DTYPES["request_header"]
REQUEST_DTYPE: np.dtype[Any] = _DTYPES["request"]
REPLY_DTYPE: np.dtype[Any] = _DTYPES["reply"]
SEGMENT_HEADER_DTYPE: np.dtype[Any] = _DTYPES["segment_header"]
assert REQUEST_DTYPE.itemsize == REQUEST_SIZE and REPLY_DTYPE.itemsize == REPLY_SIZE

# ---------------------------------------------------------------------------- messages


@dataclass(slots=True)
class Request:
    """One epoch's request: read-only numpy views onto the shared memory (zero copy).

    Valid until the reply is sent; copy what must outlive it (``np.array(req.series)``).
    Rows of ``series`` are :class:`Series` (oldest point first); ``packets`` has the fields of
    :data:`PACKET_DTYPE` (uid, sojourn_s, size_bytes, flow_hash, traffic_class, ecn).
    """

    seq: int
    epoch: int
    sim_time_ns: int
    flags: int
    series: npt.NDArray[np.float64]  # (series_count, window_len)
    scalars: npt.NDArray[np.float64]  # (scalar_count,)
    packets: np.ndarray  # (packet_count,) PACKET_DTYPE
    rewards: npt.NDArray[np.float64]  # (reward_count,)
    raw: np.ndarray = field(repr=False)  # 0-d REQUEST_DTYPE view of the whole slot


@dataclass(slots=True)
class Reply:
    """A reply as the client side reads it (read-only views, valid until the next request)."""

    seq: int
    status: ReplyStatus
    actions: np.ndarray  # (action_count,) ACTION_DTYPE
    p_l_mark: float
    p_c_drop: float
    p_c_mark: float
    raw: np.ndarray = field(repr=False)  # 0-d REPLY_DTYPE view of the whole slot


def validate_request(data: bytes | bytearray | memoryview | np.ndarray) -> None:
    """Raise :class:`InvalidMessage` unless ``data`` (REQUEST_SIZE bytes) is a valid request."""
    why = _channel.validate_request(_as_buffer(data))
    if why is not None:
        raise InvalidMessage(f"invalid request: {why}")


def validate_reply(data: bytes | bytearray | memoryview | np.ndarray,
                   request: bytes | bytearray | memoryview | np.ndarray | None = None) -> None:
    """Raise :class:`InvalidMessage` unless ``data`` is a valid reply (to ``request``)."""
    why = _channel.validate_reply(_as_buffer(data),
                                 None if request is None else _as_buffer(request))
    if why is not None:
        raise InvalidMessage(f"invalid reply: {why}")


def _as_buffer(data: bytes | bytearray | memoryview | np.ndarray) -> Any:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    return data


# ---------------------------------------------------------------------------- channel


@dataclass(frozen=True)
class ChannelOptions:
    """How a channel waits: spin at most ``spin_s`` before sleeping on the futex (the budget
    adapts: it drops to zero while spinning does not pay, e.g. when the two processes share a
    core). A killed peer is noticed at once through its pidfd; where that is unavailable (and
    for the watched pid before the peer attaches) its pid is polled every
    ``liveness_interval_s``."""

    spin_s: float = 10e-6
    liveness_interval_s: float = 0.01

    def __post_init__(self) -> None:
        if not (0.0 <= self.spin_s <= 1.0):
            raise ValueError(f"spin_s = {self.spin_s} not in [0, 1] s")
        if not (1e-4 <= self.liveness_interval_s <= 10.0):
            raise ValueError(f"liveness_interval_s = {self.liveness_interval_s} "
                             "not in [1e-4, 10] s")


class AgentChannel:
    """One end of a channel. Create with :meth:`create` (the agent) or :meth:`attach`.

    Server role (the agent): :meth:`wait_request`, then :meth:`send_reply` (or fill
    :attr:`reply_view` and call :meth:`post_reply`). Client role (what the ns-3 queue disc
    does; used by tests and benchmarks): fill :attr:`request_view`, :meth:`post_request`,
    :meth:`wait_reply` (or :meth:`call`).
    """

    def __init__(self, native: Any, options: ChannelOptions) -> None:
        """Internal: use :meth:`create` or :meth:`attach`."""
        self._native = native
        self.options = options
        req_buf = np.frombuffer(native.request_buffer(), dtype=np.uint8)
        rep_buf = np.frombuffer(native.reply_buffer(), dtype=np.uint8)
        #: Writable 0-d view of the request slot (client role).
        self.request_view: np.ndarray = req_buf.view(REQUEST_DTYPE).reshape(())
        #: Writable 0-d view of the reply slot (server role, low level).
        self.reply_view: np.ndarray = rep_buf.view(REPLY_DTYPE).reshape(())
        ro_req = req_buf.view(REQUEST_DTYPE).reshape(())
        ro_req.flags.writeable = False
        self._req_ro = ro_req
        self._req_series = ro_req["series"]
        self._req_scalars = ro_req["scalars"]
        self._req_packets = ro_req["packets"]
        self._req_uids = ro_req["packets"]["uid"]
        self._req_rewards = ro_req["rewards"]
        ro_rep = rep_buf.view(REPLY_DTYPE).reshape(())
        ro_rep.flags.writeable = False
        self._rep_ro = ro_rep
        self._rep_actions_ro = ro_rep["actions"]
        rv = self.reply_view
        self._rep_status = rv["status"]
        self._rep_count = rv["action_count"]
        self._rep_p_l_mark = rv["p_l_mark"]
        self._rep_p_c_drop = rv["p_c_drop"]
        self._rep_p_c_mark = rv["p_c_mark"]
        self._rep_uid = rv["actions"]["uid"]
        self._rep_action = rv["actions"]["action"]
        self._pending_packets = 0
        # Count-sliced request views, reused while the counts stay the same (they rarely change).
        self._slices_key: tuple[int, ...] = ()
        self._slices: tuple[np.ndarray, ...] = ()

    # ---- construction

    @classmethod
    def create(cls, *, expected_peer_pid: int | None = None,
               options: ChannelOptions | None = None) -> AgentChannel:
        """A new uniquely named segment (removes stale segments of dead processes first)."""
        options = options or ChannelOptions()
        _install_cleanup_handlers()
        status, error, message, native = _channel.create(
            options.spin_s, options.liveness_interval_s, int(expected_peer_pid or 0))
        if status != _Status.OK:
            raise ChannelError(f"cannot create agent channel: {message} "
                              f"({_ERROR_KIND.get(error, error)})")
        return cls(native, options)

    @classmethod
    def attach(cls, name: str, *, options: ChannelOptions | None = None) -> AgentChannel:
        """Attach to a segment another process created (the ns-3 side, in tests)."""
        options = options or ChannelOptions()
        _install_cleanup_handlers()
        status, error, message, native = _channel.attach(name, options.spin_s,
                                                        options.liveness_interval_s)
        if status != _Status.OK:
            if _ERROR_KIND.get(error) == "ProtocolMismatch":
                raise ProtocolMismatch(message)
            raise ChannelError(message)
        return cls(native, options)

    # ---- properties

    @property
    def name(self) -> str:
        """The segment name (``/aqm-llm-<pid>-<hex>``) to pass to the ns-3 program."""
        return str(self._native.name)

    @property
    def is_creator(self) -> bool:
        return bool(self._native.is_creator)

    @property
    def peer_pid(self) -> int:
        """The other process's pid (0 until it attached)."""
        return int(self._native.peer_pid)

    @property
    def peer_attached(self) -> bool:
        return bool(self._native.peer_attached)

    @property
    def closed(self) -> bool:
        return bool(self._native.closed)

    @property
    def stale_replies(self) -> int:
        """Client role: late replies discarded after a timeout."""
        return int(self._native.stale_replies)

    def watch_peer(self, pid: int) -> None:
        """Report :class:`PeerGone` if process ``pid`` dies before attaching."""
        self._native.watch_peer(int(pid))

    # ---- server role

    def wait_attached(self, timeout: float = 30.0) -> None:
        self._check(self._native.wait_attached(float(timeout)))

    def wait_request(self, timeout: float = 30.0) -> Request:
        """Block until the next request (spinning briefly, then sleeping) and validate it.

        Raises ChannelTimeout, PeerGone (``closed_cleanly`` at a normal end of run),
        ProtocolMismatch, or InvalidMessage (answer that with :meth:`reject`).
        """
        status = self._native.wait_request(float(timeout))
        counts = self._native.request_counts()
        self._pending_packets = counts[7]
        self._check(status)
        key = counts[4:]
        if key != self._slices_key:
            n_series, window, n_scalars, n_packets, n_rewards = key
            self._slices = (self._req_series[:n_series, :window], self._req_scalars[:n_scalars],
                            self._req_packets[:n_packets], self._req_rewards[:n_rewards])
            self._slices_key = key
        series, scalars, packets, rewards = self._slices
        return Request(counts[0], counts[1], counts[2], counts[3], series, scalars, packets,
                       rewards, self._req_ro)

    def send_reply(self, actions: npt.ArrayLike | None = None, *, p_l_mark: float = 0.0,
                   p_c_drop: float = 0.0, p_c_mark: float = 0.0,
                   status: ReplyStatus = ReplyStatus.OK) -> None:
        """Answer the outstanding request. ``actions[i]`` (an :class:`Action`) applies to
        ``request.packets[i]`` (the uids are filled in); fewer actions than packets is allowed.
        Raises InvalidMessage (nothing is sent) if a value is out of range or NaN."""
        count = 0
        if actions is not None:
            codes = actions if isinstance(actions, np.ndarray) else np.asarray(actions)
            if codes.ndim != 1 or codes.dtype.kind not in "iub":
                raise InvalidMessage(f"actions must be a 1-d integer array, not {codes.dtype} "
                                     f"with shape {codes.shape}")
            count = codes.shape[0]
            if count > self._pending_packets:
                raise InvalidMessage(f"invalid reply: {count} actions for a request with "
                                     f"{self._pending_packets} packets")
            if codes.dtype.kind == "i" and count and codes.min() < 0:
                raise InvalidMessage(f"invalid reply: negative action {int(codes.min())}")
            # Codes above MARK are caught by the extension's check of the whole reply.
            self._rep_action[:count] = codes
            self._rep_uid[:count] = self._req_uids[:count]
        self._rep_count[...] = count
        self._rep_status[...] = int(status)
        self._rep_p_l_mark[...] = p_l_mark
        self._rep_p_c_drop[...] = p_c_drop
        self._rep_p_c_mark[...] = p_c_mark
        self._check(self._native.post_reply(True))

    def reject(self) -> None:
        """Answer the outstanding (invalid) request with status ERROR."""
        self._pending_packets = 0
        self.send_reply(None, status=ReplyStatus.ERROR)

    def post_reply(self, *, validate: bool = True) -> None:
        """Send :attr:`reply_view` as it is (seq is filled in). ``validate=False`` is only for
        testing the peer's checks."""
        self._check(self._native.post_reply(bool(validate)))

    # ---- client role

    def acquire_request_slot(self, timeout: float = 30.0) -> None:
        """Wait until the request slot is free (a late reply to a timed-out request came)."""
        self._check(self._native.acquire_request_slot(float(timeout)))

    def post_request(self, *, validate: bool = True) -> None:
        """Send :attr:`request_view` (seq is assigned). ``validate=False``: testing only."""
        self._check(self._native.post_request(bool(validate)))

    def wait_reply(self, timeout: float = 30.0) -> Reply:
        self._check(self._native.wait_reply(float(timeout)))
        seq, status, count, p_l_mark, p_c_drop, p_c_mark = self._native.reply_counts()
        return Reply(seq=seq, status=ReplyStatus(status), actions=self._rep_actions_ro[:count],
                     p_l_mark=p_l_mark, p_c_drop=p_c_drop, p_c_mark=p_c_mark, raw=self._rep_ro)

    def call(self, timeout: float = 30.0) -> Reply:
        """Client round trip: send :attr:`request_view`, wait for the reply."""
        self.post_request()
        return self.wait_reply(timeout)

    # ---- lifetime

    def close(self) -> None:
        """Mark this end closed (the peer gets PeerGone), wake the peer, unlink the name.
        Views stay readable until they are garbage-collected."""
        self._native.close()

    def __enter__(self) -> AgentChannel:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        role = "creator" if self.is_creator else "attacher"
        return f"AgentChannel({self.name!r}, {role}, peer_pid={self.peer_pid})"

    # ---- errors

    def _check(self, status: int) -> None:
        if status == _Status.OK:
            return
        message = str(self._native.last_error)
        kind = _ERROR_KIND.get(int(self._native.last_error_kind), "")
        if status == _Status.TIMEOUT:
            raise ChannelTimeout(message)
        if status == _Status.PEER_GONE:
            raise PeerGone(message, closed_cleanly=kind == "PeerClosed")
        if kind == "ProtocolMismatch":
            raise ProtocolMismatch(message)
        if kind == "BadMessage":
            raise InvalidMessage(message)
        raise ChannelError(message)


# ---------------------------------------------------------------------------- housekeeping


def list_segments() -> list[str]:
    """Names (``/aqm-llm-...``) of the channel segments that exist now in /dev/shm."""
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted("/" + e for e in entries if e.startswith(SEGMENT_PREFIX))


def remove_stale_segments() -> int:
    """Remove this user's segments whose creator process is dead; returns how many."""
    return int(_channel.remove_stale_segments())


# The cleanup registry itself lives in the extension (a signal-safe table of this process's
# channels); this is only whether the Python handlers that drive it are installed.
_CLEANUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_installed_lock = threading.Lock()
_installed: dict[str, Any] = {"atexit": False, "previous": {}}

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _install_cleanup_handlers() -> None:
    with _installed_lock:
        if not _installed["atexit"]:
            atexit.register(_channel.cleanup_registered, True)
            _installed["atexit"] = True
        if threading.current_thread() is not threading.main_thread():
            return  # signal.signal only works in the main thread; atexit still covers exit
        previous: dict[int, _Handler] = _installed["previous"]
        for sig in _CLEANUP_SIGNALS:
            if sig in previous:
                continue
            current = signal.getsignal(sig)
            if current in (signal.SIG_IGN, None):
                continue  # ignored (or installed from C): leave it alone
            previous[sig] = current
            signal.signal(sig, _cleanup_then_reraise)


def _cleanup_then_reraise(signum: int, frame: FrameType | None) -> None:
    previous = _installed["previous"].get(signum, signal.SIG_DFL)
    if callable(previous):
        # e.g. SIGINT's default_int_handler raises KeyboardInterrupt: the program may catch
        # it and still close its channels normally, so only unlink the names here.
        _channel.cleanup_registered(False)
        previous(signum, frame)
        return
    # Default action (terminate): tell the peers, unlink, and die as we would have.
    _channel.cleanup_registered(True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
