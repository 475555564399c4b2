/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * AgentChannel: the shared-memory channel between an ns-3 program and the Python agent.
 *
 * A plain C++ class (no Simulator, no ns-3 library needed; the Python extension compiles the
 * same source). One POSIX shared-memory segment per run, named /aqm-llm-<pid>-<random>, laid
 * out as agent-messages.h says. The agent creates it (mode 0600, O_EXCL) and hands the name to
 * the ns-3 program, which attaches; the attacher unlinks the name once mapped, so nothing is
 * left in /dev/shm even if both processes are killed afterwards.
 *
 * Lockstep: the client (ns-3) posts a request and waits for the reply; the server (agent)
 * waits for a request and posts the reply. A wait spins briefly (an adaptive budget of at
 * most Options::spinSeconds, which drops to zero while spinning does not pay), then sleeps on
 * a futex doorbell; every wait has a timeout, and while waiting the peer's liveness is checked
 * (closed flag on every wake-up; pid, zombie state and start time every liveness interval),
 * so a dead peer is reported within about one interval.
 *
 * Ownership of the two message slots follows the sequence counters: the client may write
 * the request slot only when no request is outstanding (after a timeout it first waits for,
 * and discards, the late reply); the server may read the request slot and write the reply
 * slot only while a request is outstanding.
 *
 * Implementation: agent-channel.cc (open, close, accessors), agent-channel-protocol.cc (waits,
 * watchdog, client and server steps), agent-message-validation (message checks),
 * agent-shm (atomics, futex doorbells, process liveness), agent-segment (names, stale
 * segments) and agent-cleanup-registry (signal-safe cleanup).
 */
#ifndef AQM_LLM_AGENT_CHANNEL_H
#define AQM_LLM_AGENT_CHANNEL_H

#include "agent-messages.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace ns3
{

/// Tuning and behaviour of an AgentChannel (AgentChannel::Options).
struct AgentChannelOptions
{
    double spinSeconds = 10e-6;        ///< busy-wait at most this long before sleeping (adaptive)
    double livenessInterval = 0.01;    ///< poll the peer's pid this often when no pidfd watches it
    bool installSignalHandlers = true; ///< SIGINT/TERM/HUP/QUIT/ABRT/SEGV/BUS: clean up, re-raise
    bool unlinkAfterAttach = true;     ///< attacher removes the name once mapped
    int32_t expectedPeerPid = 0;       ///< creator: the peer's pid, watched before it attaches
};

/**
 * \ingroup aqm-llm
 * \brief Shared-memory request/reply channel to the agent (see file comment).
 */
class AgentChannel
{
  public:
    /// Outcome of an operation. Interrupted only occurs when an InterruptCheck asks to stop.
    enum class Status : int32_t
    {
        Ok = 0,
        Timeout = 1,
        PeerGone = 2,
        Invalid = 3,
        Interrupted = 4,
    };

    /// Finer reason behind a non-Ok status (LastErrorKind()).
    enum class Error : int32_t
    {
        None = 0,
        Timeout = 1,
        PeerClosed = 2,       ///< the peer closed the channel (normal end of run)
        PeerDied = 3,         ///< the peer's process is gone (killed, crashed)
        BadMessage = 4,       ///< a message failed validation
        ProtocolMismatch = 5, ///< versions, sizes or layout differ
        Closed = 6,           ///< this end was closed
        Usage = 7,            ///< call out of order (e.g. post with a request outstanding)
        System = 8,           ///< a system call failed (message says which)
        NotFound = 9,         ///< no segment of that name
        Busy = 10,            ///< another process already attached
        Interrupted = 11,
    };

    enum class Side : int32_t
    {
        Creator = 0,
        Attacher = 1,
    };

    using Options = AgentChannelOptions;

    /// Result of Create/Attach: channel is set iff status == Ok.
    struct Opened
    {
        Status status = Status::Invalid;
        Error error = Error::None;
        std::string message;
        std::unique_ptr<AgentChannel> channel;
    };

    /// Called while waiting (on EINTR and once per liveness interval); true stops the wait
    /// with Status::Interrupted. The Python binding uses it to run signal handlers.
    using InterruptCheck = std::function<bool()>;

    /// Create a new segment with a fresh unique name (removes stale aqm-llm segments first).
    static Opened Create(const Options& options = Options());
    /// Create a segment with the given name ("/aqm-llm-..."); fails if it exists.
    static Opened Create(const std::string& name, const Options& options);
    /// Attach to a segment made by Create (in another process, usually).
    static Opened Attach(const std::string& name, const Options& options = Options());

    /// Marks this end closed, wakes the peer, unlinks the name, then unmaps.
    ~AgentChannel();
    AgentChannel(const AgentChannel&) = delete;
    AgentChannel& operator=(const AgentChannel&) = delete;

    /// Marks this end closed, wakes the peer and unlinks the name; keeps the mapping (so that
    /// views into it stay valid) until destruction. Idempotent.
    void Close();
    bool IsClosed() const;

    const std::string& Name() const;
    Side GetSide() const;
    int32_t PeerPid() const;   ///< 0 while nobody attached
    bool IsPeerAttached() const;

    /// Creator: watch this pid for liveness until a peer attaches (the runner learns the
    /// ns-3 program's pid only after it created the channel and started the program).
    void SetExpectedPeerPid(int32_t pid);

    /// Creator: wait until a peer attached (or reported a protocol mismatch).
    Status WaitAttached(double timeoutSeconds);

    // ---- client side (the ns-3 queue disc) ----

    /**
     * One lockstep exchange: copies `request` into the segment (after waiting for a late
     * reply to a previous timed-out request, if any), posts it, waits for the reply, checks
     * it and copies it into `reply`. The whole call takes at most about `timeoutSeconds`.
     * Ok: `reply` is valid (its status may still be kReplyFallback). Timeout: the agent was
     * late. PeerGone: the agent is gone for good (every later call returns at once).
     * Invalid: the request or the reply failed validation (LastError() says which field).
     */
    Status Call(const agent::Request& request, agent::Reply& reply, double timeoutSeconds);

    /// Lower level client steps (Call = Acquire, write RequestSlot, Post, WaitReply, read).
    Status AcquireRequestSlot(double timeoutSeconds);
    Status PostRequest(bool validate = true); ///< validate=false only to test the peer
    Status WaitReply(double timeoutSeconds);

    // ---- server side (the agent) ----

    /// Wait for the next request and validate it (Invalid: it stays outstanding, answer it
    /// with a kReplyError reply).
    Status WaitRequest(double timeoutSeconds);
    /// Answer the outstanding request with ReplySlot()'s contents (seq is filled in).
    Status PostReply(bool validate = true); ///< validate=false only to test the peer

    /// The slots in shared memory (zero copy). See the ownership rules in the file comment.
    agent::Request& RequestSlot();
    agent::Reply& ReplySlot();

    bool HasOutstandingRequest() const;
    uint64_t LastRequestSeq() const;
    uint64_t StaleReplies() const; ///< late replies discarded after a timeout

    const std::string& LastError() const;
    Error LastErrorKind() const;
    void SetInterruptCheck(InterruptCheck check);

    // ---- validation (also used by the Python side and the benchmark) ----

    /// True if every count is within capacity and every value in use is valid; else false
    /// and a message naming the field. Same as agent::ValidateRequest.
    static bool ValidateRequest(const agent::Request& request, std::string* why);
    /// As above; with `request`, also checks action_count <= packet_count and that each
    /// action's uid matches the packet at the same index. Same as agent::ValidateReply.
    static bool ValidateReply(const agent::Reply& reply,
                              const agent::Request* request,
                              std::string* why);

    // ---- names, cleanup ----

    static const char* StatusName(Status status);
    static const char* ErrorName(Error error);
    /// "/aqm-llm-<pid>-<16 hex digits>".
    static std::string NewSegmentName();
    /// Remove /dev/shm/aqm-llm-* segments of this user whose creator process is dead.
    /// Returns how many were removed.
    static size_t RemoveStaleSegments();
    /// Async-signal-safe: for every live channel of this process, unlink its name and (if
    /// markClosed) mark it closed and wake the peer. Used by the signal handlers and at exit.
    static void CleanupRegistered(bool markClosed = true);
    /// Install the signal handlers (done by Create/Attach when options ask for it).
    static void InstallSignalCleanup();
    /// This process's start time as /proc/self/stat reports it.
    static uint64_t ProcessStartTime(int32_t pid);
    /// True if `pid` exists, is not a zombie and (if startTime != 0) started at startTime.
    static bool ProcessAlive(int32_t pid, uint64_t startTime);

  private:
    AgentChannel(Side side, std::string name, int fd, void* base, const Options& options);

    template <class Ready>
    Status WaitUntil(Ready ready, double timeoutSeconds);
    /// Start a thread that sleeps on the peer's pidfd and, when the peer exits, sets
    /// m_peerDead and rings our own doorbell: waits need no periodic wake-ups then.
    void StartWatchdog(int32_t pid, uint64_t startTime);
    void StopWatchdog();
    /**
     * \brief Wait for the reply to request \p seq, copy it out of the segment and check the copy
     * (seq echoed, valid for \p request, not an error reply).
     * \param seq the request's seq
     * \param timeoutSeconds how long to wait
     * \param reply the copy
     * \param request the request it answers (null: not checked against one)
     * \return Ok, Timeout, PeerGone, Interrupted or Invalid
     */
    Status AwaitReply(uint64_t seq,
                      double timeoutSeconds,
                      agent::Reply& reply,
                      const agent::Request* request);
    Status Fail(Status status, Error error, std::string message);
    void Ring();
    agent::SegmentHeader& Header() const;
    uint32_t* MyBell() const;
    uint32_t* MyWaiters() const;

    Side m_side;
    std::string m_name;
    int m_fd;
    void* m_base;
    Options m_options;
    int64_t m_spinBudgetNs{0}; ///< current (adaptive) spin budget
    uint64_t m_waits{0};
    bool m_closed{false};
    bool m_peerGone{false};
    int m_registrySlot{-1};
    uint64_t m_awaitingSeq{0}; ///< client: request posted whose reply was not read yet
    uint64_t m_staleReplies{0};
    std::string m_lastError;
    Error m_lastErrorKind{Error::None};
    InterruptCheck m_interruptCheck;
    std::unique_ptr<std::thread> m_watchdog;
    int32_t m_ownerPid; ///< the process that opened the channel (a fork()ed child is not it)
    int m_stopFd{-1};
    bool m_watchdogTried{false};
    std::atomic<bool> m_peerDead{false};
};

} // namespace ns3

#endif // AQM_LLM_AGENT_CHANNEL_H
