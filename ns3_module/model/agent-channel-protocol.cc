/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * AgentChannel, part 2: the lockstep protocol. Waiting (an adaptive spin, then a sleep on the
 * futex doorbell, with the peer's liveness checked on every wake-up), the watchdog thread that
 * sleeps on the peer's pidfd, and the client (ns-3) and server (agent) steps. Opening and
 * closing are in agent-channel.cc.
 */
#include "agent-channel.h"

#include "agent-segment.h"
#include "agent-shm.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ns3
{

using agent::Reply;
using agent::Request;
using agent::SegmentHeader;
using agent::shm::CpuRelax;
using agent::shm::FutexWait;
using agent::shm::LayoutDescription;
using agent::shm::Load;
using agent::shm::NowNs;
using agent::shm::OurLayout;
using agent::shm::RingBell;
using agent::shm::SecondsToNs;
using agent::shm::Store;

// ---------------------------------------------------------------- waiting

template <class Ready>
AgentChannel::Status
AgentChannel::WaitUntil(Ready ready, double timeoutSeconds)
{
    if (m_closed)
    {
        return Fail(Status::Invalid, Error::Closed, "agent channel " + m_name + " is closed");
    }
    if (m_peerGone)
    {
        return m_lastErrorKind == Error::ProtocolMismatch ? Status::Invalid : Status::PeerGone;
    }
    if (ready())
    {
        return Status::Ok;
    }
    SegmentHeader& h = Header();
    const int64_t start = NowNs();
    const int64_t deadline = start + SecondsToNs(timeoutSeconds);
    // Adaptive spin: spinning only pays when the peer runs on another core and answers
    // within the budget. When spins keep failing (peer busy for long, or both processes
    // sharing one core, where spinning only delays the peer) the budget halves down to zero;
    // every 256th wait probes with the full budget again.
    const int64_t maxSpin = SecondsToNs(m_options.spinSeconds);
    const int64_t budget = (++m_waits % 256 == 0) ? maxSpin : m_spinBudgetNs;
    const int64_t spinEnd = std::min(deadline, start + budget);
    if (spinEnd > start)
    {
        for (uint32_t i = 1;; ++i)
        {
            CpuRelax();
            if (ready())
            {
                m_spinBudgetNs = maxSpin;
                return Status::Ok;
            }
            // Read the clock only every 64 rounds (about a microsecond).
            if ((i & 63) == 0 && NowNs() >= spinEnd)
            {
                break;
            }
        }
        m_spinBudgetNs = m_spinBudgetNs >= 400 ? m_spinBudgetNs / 2 : 0;
    }
    // Between wake-ups: with the watchdog thread watching the peer's pidfd, sleep until the
    // deadline (or, when a Python interrupt check is set, 250 ms at most, in case a signal
    // went to another thread); without it, poll the peer's pid every liveness interval.
    const int64_t interval = std::max<int64_t>(SecondsToNs(m_options.livenessInterval), 100000);
    const int64_t interruptSlice = 250000000;
    int64_t nextCheck = NowNs() + (m_watchdog != nullptr ? interruptSlice : interval);
    uint32_t* bell = MyBell();
    uint32_t* waiters = MyWaiters();
    const bool creator = m_side == Side::Creator;
    for (;;)
    {
        uint32_t seen = Load(*bell);
        if (ready())
        {
            return Status::Ok;
        }
        // Cheap checks after every wake-up: a mismatch report, a closed or dead peer.
        if (creator && Load(h.attach_result) == agent::kAttachMismatch)
        {
            return Fail(Status::Invalid, Error::ProtocolMismatch,
                        "protocol mismatch on agent channel " + m_name + ": this program speaks " +
                            OurLayout() + ", the peer (pid " + std::to_string(Load(h.attacher_pid)) +
                            ") speaks " +
                            LayoutDescription(h.attacher_version, h.attacher_header_size,
                                              h.attacher_request_size, h.attacher_reply_size,
                                              h.attacher_layout_hash) +
                            "; rebuild both from the same sources");
        }
        const int32_t peerPid = creator ? Load(h.attacher_pid) : h.creator_pid;
        const uint32_t peerState = creator ? Load(h.attacher_state) : Load(h.creator_state);
        if (peerState == agent::kPartyClosed)
        {
            return Fail(Status::PeerGone, Error::PeerClosed,
                        "the peer (pid " + std::to_string(peerPid) + ") closed agent channel " +
                            m_name);
        }
        if (peerPid != 0 && !m_watchdogTried && peerState == agent::kPartyActive)
        {
            StartWatchdog(peerPid,
                          creator ? Load(h.attacher_start_time) : h.creator_start_time);
        }
        if (m_peerDead.load(std::memory_order_acquire))
        {
            return Fail(Status::PeerGone, Error::PeerDied,
                        "the peer process (pid " + std::to_string(peerPid) +
                            ") of agent channel " + m_name + " is gone");
        }
        const bool watched = m_watchdog != nullptr;
        int64_t now = NowNs();
        if (now >= nextCheck)
        {
            nextCheck = now + (watched ? interruptSlice : interval);
            if (watched)
            {
                // the watchdog reports a death through m_peerDead and a ring of our bell
            }
            else if (peerPid != 0)
            {
                uint64_t startTime = creator ? Load(h.attacher_start_time) : h.creator_start_time;
                if (!ProcessAlive(peerPid, startTime))
                {
                    return Fail(Status::PeerGone, Error::PeerDied,
                                "the peer process (pid " + std::to_string(peerPid) +
                                    ") of agent channel " + m_name + " is gone");
                }
            }
            else if (m_options.expectedPeerPid > 0 && !ProcessAlive(m_options.expectedPeerPid, 0))
            {
                return Fail(Status::PeerGone, Error::PeerDied,
                            "the peer process (pid " + std::to_string(m_options.expectedPeerPid) +
                                ") exited before attaching to agent channel " + m_name);
            }
            if (m_interruptCheck && m_interruptCheck())
            {
                return Fail(Status::Interrupted, Error::Interrupted, "interrupted");
            }
        }
        if (now >= deadline)
        {
            return Fail(Status::Timeout, Error::Timeout, "timed out");
        }
        const int64_t wakeAt = (watched && !m_interruptCheck) ? deadline
                                                               : std::min(deadline, nextCheck);
        std::atomic_ref<uint32_t>(*waiters).fetch_add(1, std::memory_order_seq_cst);
        long rc = FutexWait(bell, seen, wakeAt - now);
        int err = errno;
        std::atomic_ref<uint32_t>(*waiters).fetch_sub(1, std::memory_order_seq_cst);
        if (rc != 0 && err == EINTR && m_interruptCheck && m_interruptCheck())
        {
            return Fail(Status::Interrupted, Error::Interrupted, "interrupted");
        }
    }
}

void
AgentChannel::StartWatchdog(int32_t pid, uint64_t startTime)
{
    m_watchdogTried = true;
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0)
    {
        if (errno == ESRCH)
        {
            m_peerDead.store(true, std::memory_order_release);
        }
        return; // no pidfd support (old kernel): the waits poll the pid instead
    }
    // The pidfd refers to whatever process has this pid now: make sure it is the peer (not a
    // reused pid) and not already a zombie (a pidfd of an exited process is readable at once,
    // but check anyway).
    if (!ProcessAlive(pid, startTime))
    {
        close(pidfd);
        m_peerDead.store(true, std::memory_order_release);
        return;
    }
    m_stopFd = eventfd(0, EFD_CLOEXEC);
    if (m_stopFd < 0)
    {
        close(pidfd);
        return;
    }
    uint32_t* bell = MyBell();
    uint32_t* waiters = MyWaiters();
    const int stopFd = m_stopFd;
    // The thread blocks every signal, so that signals keep interrupting the waiting thread.
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    m_watchdog = std::make_unique<std::thread>([this, pidfd, stopFd, bell, waiters] {
        pollfd fds[2] = {{pidfd, POLLIN, 0}, {stopFd, POLLIN, 0}};
        while (poll(fds, 2, -1) < 0 && errno == EINTR)
        {
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0)
        {
            m_peerDead.store(true, std::memory_order_release);
            RingBell(bell, waiters); // wake our own waiter
        }
        close(pidfd);
    });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void
AgentChannel::StopWatchdog()
{
    if (m_watchdog != nullptr)
    {
        uint64_t one = 1;
        if (write(m_stopFd, &one, sizeof(one)) != sizeof(one))
        {
            // cannot happen with an eventfd; the join below would then wait for the peer
        }
        m_watchdog->join();
        m_watchdog.reset();
    }
    if (m_stopFd >= 0)
    {
        close(m_stopFd);
        m_stopFd = -1;
    }
}

AgentChannel::Status
AgentChannel::WaitAttached(double timeoutSeconds)
{
    SegmentHeader& h = Header();
    Status s = WaitUntil([&] { return Load(h.attach_result) == agent::kAttachOk; },
                         timeoutSeconds);
    if (s == Status::Timeout)
    {
        m_lastError = "no ns-3 program attached to agent channel " + m_name + " in time";
    }
    return s;
}

// ---------------------------------------------------------------- client side

AgentChannel::Status
AgentChannel::AcquireRequestSlot(double timeoutSeconds)
{
    SegmentHeader& h = Header();
    const uint64_t outstanding = Load(h.request_seq);
    Status s = WaitUntil([&] { return Load(h.reply_seq) == outstanding; }, timeoutSeconds);
    if (s == Status::Ok && m_awaitingSeq != 0)
    {
        // A reply that came after its request had timed out: nobody reads it.
        ++m_staleReplies;
        m_awaitingSeq = 0;
    }
    else if (s == Status::Timeout)
    {
        m_lastError = "the agent has not answered request " + std::to_string(outstanding) +
                      " yet (timed out before it)";
    }
    return s;
}

AgentChannel::Status
AgentChannel::PostRequest(bool validate)
{
    if (m_closed)
    {
        return Fail(Status::Invalid, Error::Closed, "agent channel " + m_name + " is closed");
    }
    if (m_peerGone)
    {
        return m_lastErrorKind == Error::ProtocolMismatch ? Status::Invalid : Status::PeerGone;
    }
    SegmentHeader& h = Header();
    const uint64_t seq = Load(h.request_seq);
    if (Load(h.reply_seq) != seq)
    {
        return Fail(Status::Invalid, Error::Usage,
                    "request " + std::to_string(seq) +
                        " is still outstanding: AcquireRequestSlot() before writing the next one");
    }
    Request& r = RequestSlot();
    std::string why;
    if (validate && !ValidateRequest(r, &why))
    {
        return Fail(Status::Invalid, Error::BadMessage, "invalid request: " + why);
    }
    r.header.seq = seq + 1;
    m_awaitingSeq = seq + 1;
    Store(h.request_seq, seq + 1);
    Ring();
    return Status::Ok;
}

AgentChannel::Status
AgentChannel::WaitReply(double timeoutSeconds)
{
    const uint64_t seq = m_awaitingSeq;
    if (seq == 0)
    {
        return Fail(Status::Invalid, Error::Usage, "no request is awaiting a reply");
    }
    Reply copy;
    return AwaitReply(seq, timeoutSeconds, copy, &RequestSlot());
}

AgentChannel::Status
AgentChannel::AwaitReply(uint64_t seq, double timeoutSeconds, Reply& reply, const Request* request)
{
    SegmentHeader& h = Header();
    Status s = WaitUntil([&] { return Load(h.reply_seq) == seq; }, timeoutSeconds);
    if (s != Status::Ok)
    {
        if (s == Status::Timeout)
        {
            m_lastError = "no reply to request " + std::to_string(seq) + " in time";
        }
        return s;
    }
    // Copy first, then check the copy: what the caller reads is exactly what was checked.
    m_awaitingSeq = 0;
    reply = ReplySlot();
    std::string why;
    if (reply.seq != seq)
    {
        return Fail(Status::Invalid, Error::BadMessage,
                    "invalid reply: seq " + std::to_string(reply.seq) +
                        " does not echo request seq " + std::to_string(seq));
    }
    if (!ValidateReply(reply, request, &why))
    {
        return Fail(Status::Invalid, Error::BadMessage, "invalid reply: " + why);
    }
    if (reply.status == agent::kReplyError)
    {
        return Fail(Status::Invalid, Error::BadMessage,
                    "the agent failed on request " + std::to_string(seq) +
                        " or rejected it (the agent's log says why)");
    }
    return Status::Ok;
}

AgentChannel::Status
AgentChannel::Call(const Request& request, Reply& reply, double timeoutSeconds)
{
    const int64_t deadline = NowNs() + SecondsToNs(timeoutSeconds);
    auto remaining = [&] { return double(std::max<int64_t>(deadline - NowNs(), 0)) * 1e-9; };
    Status s = AcquireRequestSlot(timeoutSeconds);
    if (s != Status::Ok)
    {
        return s;
    }
    RequestSlot() = request;
    s = PostRequest(true);
    if (s != Status::Ok)
    {
        return s;
    }
    return AwaitReply(Load(Header().request_seq), remaining(), reply, &request);
}

// ---------------------------------------------------------------- server side

AgentChannel::Status
AgentChannel::WaitRequest(double timeoutSeconds)
{
    SegmentHeader& h = Header();
    Status s = WaitUntil([&] { return Load(h.request_seq) != Load(h.reply_seq); }, timeoutSeconds);
    if (s != Status::Ok)
    {
        if (s == Status::Timeout)
        {
            m_lastError = "no request on agent channel " + m_name + " in time";
        }
        return s;
    }
    std::string why;
    if (!ValidateRequest(RequestSlot(), &why))
    {
        return Fail(Status::Invalid, Error::BadMessage,
                    "invalid request " + std::to_string(Load(h.request_seq)) + ": " + why);
    }
    return Status::Ok;
}

AgentChannel::Status
AgentChannel::PostReply(bool validate)
{
    if (m_closed)
    {
        return Fail(Status::Invalid, Error::Closed, "agent channel " + m_name + " is closed");
    }
    SegmentHeader& h = Header();
    const uint64_t seq = Load(h.request_seq);
    if (seq == Load(h.reply_seq))
    {
        return Fail(Status::Invalid, Error::Usage, "no request is outstanding to reply to");
    }
    Reply& reply = ReplySlot();
    reply.seq = seq;
    std::string why;
    if (validate && !ValidateReply(reply, &RequestSlot(), &why))
    {
        return Fail(Status::Invalid, Error::BadMessage, "invalid reply: " + why);
    }
    Store(h.reply_seq, seq);
    Ring();
    return Status::Ok;
}

} // namespace ns3
