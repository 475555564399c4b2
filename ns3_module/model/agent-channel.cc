/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "agent-channel.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ns3
{

using agent::Reply;
using agent::Request;
using agent::SegmentHeader;

namespace
{

// ---------------------------------------------------------------- atomics, futex, time

template <class T>
T
Load(const T& field, std::memory_order order = std::memory_order_acquire)
{
    return std::atomic_ref<T>(const_cast<T&>(field)).load(order);
}

template <class T>
void
Store(T& field, T value, std::memory_order order = std::memory_order_release)
{
    std::atomic_ref<T>(field).store(value, order);
}

inline void
CpuRelax()
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

int64_t
NowNs()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t
SecondsToNs(double s)
{
    if (!(s > 0)) // also NaN
    {
        return 0;
    }
    return int64_t(std::min(s, 1e9) * 1e9);
}

long
FutexWait(uint32_t* word, uint32_t expected, int64_t timeoutNs)
{
    timespec ts;
    ts.tv_sec = timeoutNs / 1000000000;
    ts.tv_nsec = timeoutNs % 1000000000;
    // Not FUTEX_PRIVATE_FLAG: the word lives in memory shared between processes.
    return syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void
FutexWake(uint32_t* word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

// Ring the doorbell `bell`: bump it (so that a waiter about to sleep sees a change) and
// wake sleepers. Async-signal-safe.
void
RingBell(uint32_t* bell, uint32_t* waiters)
{
    std::atomic_ref<uint32_t>(*bell).fetch_add(1, std::memory_order_seq_cst);
    if (std::atomic_ref<uint32_t>(*waiters).load(std::memory_order_seq_cst) != 0)
    {
        FutexWake(bell);
    }
}

std::string
Hex(uint64_t v)
{
    char buf[32];
    std::snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string
Num(double v)
{
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.17g", v);
    return buf;
}

constexpr const char kPrefix[] = "aqm-llm-";
constexpr const char kShmDir[] = "/dev/shm";

// ---------------------------------------------------------------- cleanup registry

// Fixed-size, lock-free table that a signal handler can walk. One entry per live channel.
struct RegistryEntry
{
    std::atomic<int> state{0}; // 0 free, 1 being filled, 2 live
    std::atomic<int32_t> ownerPid{0};
    std::atomic<SegmentHeader*> header{nullptr};
    std::atomic<int> side{0};
    std::atomic<bool> unlinkOnCleanup{false};
    char path[256]{};
};

constexpr int kRegistrySize = 64;
RegistryEntry g_registry[kRegistrySize];
std::atomic<bool> g_atexitInstalled{false};
std::atomic<bool> g_handlersInstalled{false};

constexpr int kCleanupSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS};
struct sigaction g_oldActions[NSIG];

int
RegistryAdd(const std::string& name, bool unlinkOnCleanup)
{
    for (int i = 0; i < kRegistrySize; ++i)
    {
        int expected = 0;
        if (g_registry[i].state.compare_exchange_strong(expected, 1))
        {
            RegistryEntry& e = g_registry[i];
            std::snprintf(e.path, sizeof(e.path), "%s%s", kShmDir, name.c_str());
            e.ownerPid.store(getpid());
            e.header.store(nullptr);
            e.unlinkOnCleanup.store(unlinkOnCleanup);
            e.state.store(2);
            return i;
        }
    }
    return -1; // full: the channel still works, it is just not cleaned up by signals
}

void
RegistrySetHeader(int slot, SegmentHeader* header, AgentChannel::Side side)
{
    if (slot >= 0)
    {
        g_registry[slot].side.store(static_cast<int>(side));
        g_registry[slot].header.store(header);
    }
}

void
RegistryRemove(int slot)
{
    if (slot >= 0)
    {
        g_registry[slot].header.store(nullptr);
        g_registry[slot].unlinkOnCleanup.store(false);
        g_registry[slot].state.store(0);
    }
}

void
CleanupAtExit()
{
    AgentChannel::CleanupRegistered();
}

void
CleanupSignalHandler(int sig, siginfo_t*, void*)
{
    int savedErrno = errno;
    AgentChannel::CleanupRegistered();
    // Re-instate whatever was there before (default action, usually) and deliver again.
    sigaction(sig, &g_oldActions[sig], nullptr);
    if (sig != SIGSEGV && sig != SIGBUS)
    {
        raise(sig); // pending until this handler returns
    }
    // SIGSEGV/SIGBUS: returning re-executes the faulting instruction under the old action.
    errno = savedErrno;
}

bool
ReadProcStat(int32_t pid, char* state, uint64_t* startTime)
{
    char path[64];
    std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
    {
        return false;
    }
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
    {
        return false;
    }
    buf[n] = '\0';
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses; start after the last ')'.
    char* p = std::strrchr(buf, ')');
    if (p == nullptr || p[1] != ' ')
    {
        return false;
    }
    p += 2;
    *state = *p;
    int field = 3; // p points at field 3 (state); starttime is field 22
    while (*p != '\0' && field < 22)
    {
        if (*p == ' ')
        {
            ++field;
        }
        ++p;
    }
    *startTime = std::strtoull(p, nullptr, 10);
    return field == 22;
}

bool
ValidName(const std::string& name)
{
    if (name.size() < 2 || name.size() > 200 || name[0] != '/')
    {
        return false;
    }
    return name.find('/', 1) == std::string::npos;
}

std::string
LayoutDescription(uint32_t version, uint32_t headerSize, uint32_t requestSize, uint32_t replySize,
                  uint64_t layoutHash)
{
    return "protocol v" + std::to_string(version) + " (header " + std::to_string(headerSize) +
           " B, request " + std::to_string(requestSize) + " B, reply " +
           std::to_string(replySize) + " B, layout " + Hex(layoutHash) + ")";
}

std::string
OurLayout()
{
    return LayoutDescription(agent::kProtocolVersion, sizeof(SegmentHeader), sizeof(Request),
                             sizeof(Reply), agent::LayoutHash());
}

} // namespace

// ---------------------------------------------------------------- construction

AgentChannel::AgentChannel(Side side, std::string name, int fd, void* base, const Options& options)
    : m_side(side),
      m_name(std::move(name)),
      m_fd(fd),
      m_base(base),
      m_options(options),
      m_spinBudgetNs(SecondsToNs(options.spinSeconds)),
      m_ownerPid(getpid())
{
}

AgentChannel::Opened
AgentChannel::Create(const Options& options)
{
    RemoveStaleSegments();
    Opened result;
    for (int attempt = 0; attempt < 4; ++attempt)
    {
        result = Create(NewSegmentName(), options);
        if (result.error != Error::Busy)
        {
            break;
        }
    }
    return result;
}

AgentChannel::Opened
AgentChannel::Create(const std::string& name, const Options& options)
{
    Opened out;
    auto fail = [&](Error error, std::string message) {
        out.status = Status::Invalid;
        out.error = error;
        out.message = std::move(message);
        return std::move(out);
    };
    if (!ValidName(name))
    {
        return fail(Error::Usage, "bad segment name '" + name + "' (want /aqm-llm-...)");
    }
    int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
    {
        int err = errno;
        return fail(err == EEXIST ? Error::Busy : Error::System,
                    "shm_open(" + name + ", O_CREAT|O_EXCL): " + std::strerror(err));
    }
    int slot = RegistryAdd(name, true);
    if (ftruncate(fd, static_cast<off_t>(agent::kSegmentSize)) != 0)
    {
        int err = errno;
        RegistryRemove(slot);
        shm_unlink(name.c_str());
        close(fd);
        return fail(Error::System, "ftruncate(" + name + "): " + std::strerror(err));
    }
    void* base =
        mmap(nullptr, agent::kSegmentSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
    {
        int err = errno;
        RegistryRemove(slot);
        shm_unlink(name.c_str());
        close(fd);
        return fail(Error::System, "mmap(" + name + "): " + std::strerror(err));
    }
    auto* h = static_cast<SegmentHeader*>(base);
    std::memset(base, 0, agent::kSegmentSize);
    h->protocol_version = agent::kProtocolVersion;
    h->header_size = sizeof(SegmentHeader);
    h->request_size = sizeof(Request);
    h->reply_size = sizeof(Reply);
    h->layout_hash = agent::LayoutHash();
    h->request_offset = agent::kRequestOffset;
    h->reply_offset = agent::kReplyOffset;
    h->segment_size = agent::kSegmentSize;
    h->creator_pid = getpid();
    h->creator_start_time = ProcessStartTime(getpid());
    h->creator_state = agent::kPartyActive;
    Store(h->magic, agent::kMagic); // last: the segment is now initialised
    RegistrySetHeader(slot, h, Side::Creator);

    if (!g_atexitInstalled.exchange(true))
    {
        std::atexit(CleanupAtExit);
    }
    if (options.installSignalHandlers)
    {
        InstallSignalCleanup();
    }
    out.status = Status::Ok;
    out.channel.reset(new AgentChannel(Side::Creator, name, fd, base, options));
    out.channel->m_registrySlot = slot;
    return out;
}

AgentChannel::Opened
AgentChannel::Attach(const std::string& name, const Options& options)
{
    Opened out;
    auto fail = [&](Error error, std::string message) {
        out.status = Status::Invalid;
        out.error = error;
        out.message = std::move(message);
        return std::move(out);
    };
    if (!ValidName(name))
    {
        return fail(Error::Usage, "bad segment name '" + name + "' (want /aqm-llm-...)");
    }
    int fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
    {
        int err = errno;
        return fail(err == ENOENT ? Error::NotFound : Error::System,
                    "cannot attach to agent channel " + name + ": " + std::strerror(err));
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
    {
        int err = errno;
        close(fd);
        return fail(Error::System, "fstat(" + name + "): " + std::strerror(err));
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077) != 0)
    {
        close(fd);
        return fail(Error::System, "agent channel " + name +
                                       " is not private to this user (owner uid " +
                                       std::to_string(st.st_uid) + ", mode " +
                                       std::to_string(st.st_mode & 0777) + ")");
    }
    if (st.st_size < static_cast<off_t>(agent::kFrozenPrefixSize))
    {
        close(fd);
        return fail(Error::ProtocolMismatch,
                    "agent channel " + name + " is too small (" + std::to_string(st.st_size) +
                        " B): not an aqm-llm segment, or not initialised");
    }
    size_t mapSize = static_cast<size_t>(st.st_size);
    void* base = mmap(nullptr, mapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
    {
        int err = errno;
        close(fd);
        return fail(Error::System, "mmap(" + name + "): " + std::strerror(err));
    }
    auto* h = static_cast<SegmentHeader*>(base);
    auto unmapFail = [&](Error error, std::string message) {
        munmap(base, mapSize);
        close(fd);
        return fail(error, std::move(message));
    };
    if (Load(h->magic) != agent::kMagic)
    {
        return unmapFail(Error::ProtocolMismatch,
                         "agent channel " + name + " has a bad magic number " +
                             Hex(Load(h->magic)) + ": not an aqm-llm segment, or not initialised");
    }
    bool same = h->protocol_version == agent::kProtocolVersion &&
                h->header_size == sizeof(SegmentHeader) && h->request_size == sizeof(Request) &&
                h->reply_size == sizeof(Reply) && h->layout_hash == agent::LayoutHash() &&
                h->request_offset == agent::kRequestOffset &&
                h->reply_offset == agent::kReplyOffset &&
                h->segment_size == agent::kSegmentSize && mapSize == agent::kSegmentSize;
    if (!same)
    {
        // Tell the creator (frozen prefix fields), so that it fails promptly too.
        std::string theirs = LayoutDescription(h->protocol_version, h->header_size,
                                               h->request_size, h->reply_size, h->layout_hash);
        h->attacher_version = agent::kProtocolVersion;
        h->attacher_header_size = sizeof(SegmentHeader);
        h->attacher_request_size = sizeof(Request);
        h->attacher_reply_size = sizeof(Reply);
        h->attacher_layout_hash = agent::LayoutHash();
        int32_t zero = 0;
        std::atomic_ref<int32_t>(h->attacher_pid).compare_exchange_strong(zero, getpid());
        Store(h->attach_result, static_cast<uint32_t>(agent::kAttachMismatch));
        RingBell(&h->creator_bell, &h->creator_waiters);
        return unmapFail(Error::ProtocolMismatch,
                         "protocol mismatch on agent channel " + name + ": this program speaks " +
                             OurLayout() + ", the agent (pid " + std::to_string(h->creator_pid) +
                             ") speaks " + theirs + "; rebuild both from the same sources");
    }
    int32_t expected = 0;
    if (!std::atomic_ref<int32_t>(h->attacher_pid).compare_exchange_strong(expected, getpid()))
    {
        return unmapFail(Error::Busy, "agent channel " + name + " is already attached by pid " +
                                          std::to_string(expected));
    }
    h->attacher_start_time = ProcessStartTime(getpid());
    h->attacher_version = agent::kProtocolVersion;
    h->attacher_header_size = sizeof(SegmentHeader);
    h->attacher_request_size = sizeof(Request);
    h->attacher_reply_size = sizeof(Reply);
    h->attacher_layout_hash = agent::LayoutHash();
    bool unlinked = false;
    if (options.unlinkAfterAttach)
    {
        // Both ends are mapped: the name is not needed any more, and without it nothing can
        // be left behind in /dev/shm whatever happens to the two processes. (Before the
        // announcement below, so that "attached" implies "name gone".)
        shm_unlink(name.c_str());
        unlinked = true;
    }
    Store(h->attacher_state, static_cast<uint32_t>(agent::kPartyActive));
    Store(h->attach_result, static_cast<uint32_t>(agent::kAttachOk));
    RingBell(&h->creator_bell, &h->creator_waiters);
    int slot = RegistryAdd(name, !unlinked);
    RegistrySetHeader(slot, h, Side::Attacher);
    if (!g_atexitInstalled.exchange(true))
    {
        std::atexit(CleanupAtExit);
    }
    if (options.installSignalHandlers)
    {
        InstallSignalCleanup();
    }
    out.status = Status::Ok;
    out.channel.reset(new AgentChannel(Side::Attacher, name, fd, base, options));
    out.channel->m_registrySlot = slot;
    out.channel->StartWatchdog(h->creator_pid, h->creator_start_time);
    return out;
}

AgentChannel::~AgentChannel()
{
    Close();
    if (m_base != nullptr)
    {
        munmap(m_base, agent::kSegmentSize);
        m_base = nullptr;
    }
}

void
AgentChannel::Close()
{
    if (m_closed)
    {
        return;
    }
    m_closed = true;
    if (getpid() != m_ownerPid)
    {
        // A copy inherited through fork(): the channel belongs to the parent. Do not mark it
        // closed or unlink it, and leave the parent's watchdog (not a thread here) alone.
        (void)m_watchdog.release();
        m_registrySlot = -1;
        if (m_fd >= 0)
        {
            close(m_fd);
            m_fd = -1;
        }
        return;
    }
    StopWatchdog();
    RegistryRemove(m_registrySlot);
    m_registrySlot = -1;
    SegmentHeader& h = Header();
    if (m_side == Side::Creator)
    {
        Store(h.creator_state, static_cast<uint32_t>(agent::kPartyClosed));
    }
    else
    {
        Store(h.attacher_state, static_cast<uint32_t>(agent::kPartyClosed));
    }
    Ring();
    if (m_side == Side::Creator || !m_options.unlinkAfterAttach)
    {
        shm_unlink(m_name.c_str()); // ENOENT if the attacher already did: fine
    }
    if (m_fd >= 0)
    {
        close(m_fd);
        m_fd = -1;
    }
}

bool
AgentChannel::IsClosed() const
{
    return m_closed;
}

const std::string&
AgentChannel::Name() const
{
    return m_name;
}

AgentChannel::Side
AgentChannel::GetSide() const
{
    return m_side;
}

int32_t
AgentChannel::PeerPid() const
{
    const SegmentHeader& h = Header();
    return m_side == Side::Creator ? Load(h.attacher_pid) : h.creator_pid;
}

bool
AgentChannel::IsPeerAttached() const
{
    return Load(Header().attach_result) == agent::kAttachOk;
}

SegmentHeader&
AgentChannel::Header() const
{
    return *static_cast<SegmentHeader*>(m_base);
}

uint32_t*
AgentChannel::MyBell() const
{
    return m_side == Side::Creator ? &Header().creator_bell : &Header().attacher_bell;
}

uint32_t*
AgentChannel::MyWaiters() const
{
    return m_side == Side::Creator ? &Header().creator_waiters : &Header().attacher_waiters;
}

void
AgentChannel::Ring()
{
    SegmentHeader& h = Header();
    if (m_side == Side::Creator)
    {
        RingBell(&h.attacher_bell, &h.attacher_waiters);
    }
    else
    {
        RingBell(&h.creator_bell, &h.creator_waiters);
    }
}

Request&
AgentChannel::RequestSlot()
{
    return *reinterpret_cast<Request*>(static_cast<char*>(m_base) + agent::kRequestOffset);
}

Reply&
AgentChannel::ReplySlot()
{
    return *reinterpret_cast<Reply*>(static_cast<char*>(m_base) + agent::kReplyOffset);
}

bool
AgentChannel::HasOutstandingRequest() const
{
    const SegmentHeader& h = Header();
    return Load(h.request_seq) != Load(h.reply_seq);
}

uint64_t
AgentChannel::LastRequestSeq() const
{
    return Load(Header().request_seq);
}

uint64_t
AgentChannel::StaleReplies() const
{
    return m_staleReplies;
}

const std::string&
AgentChannel::LastError() const
{
    return m_lastError;
}

AgentChannel::Error
AgentChannel::LastErrorKind() const
{
    return m_lastErrorKind;
}

void
AgentChannel::SetExpectedPeerPid(int32_t pid)
{
    m_options.expectedPeerPid = pid;
}

void
AgentChannel::SetInterruptCheck(InterruptCheck check)
{
    m_interruptCheck = std::move(check);
}

AgentChannel::Status
AgentChannel::Fail(Status status, Error error, std::string message)
{
    m_lastError = std::move(message);
    m_lastErrorKind = error;
    if (status == Status::PeerGone || error == Error::ProtocolMismatch)
    {
        m_peerGone = true; // sticky: later calls fail at once, without waiting
    }
    return status;
}

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
    SegmentHeader& h = Header();
    const uint64_t seq = m_awaitingSeq;
    if (seq == 0)
    {
        return Fail(Status::Invalid, Error::Usage, "no request is awaiting a reply");
    }
    Status s = WaitUntil([&] { return Load(h.reply_seq) == seq; }, timeoutSeconds);
    if (s != Status::Ok)
    {
        if (s == Status::Timeout)
        {
            m_lastError = "no reply to request " + std::to_string(seq) + " in time";
        }
        return s;
    }
    m_awaitingSeq = 0;
    const Reply& reply = ReplySlot();
    std::string why;
    if (reply.seq != seq)
    {
        return Fail(Status::Invalid, Error::BadMessage,
                    "invalid reply: seq " + std::to_string(reply.seq) +
                        " does not echo request seq " + std::to_string(seq));
    }
    if (!ValidateReply(reply, &RequestSlot(), &why))
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
    SegmentHeader& h = Header();
    const uint64_t seq = Load(h.request_seq);
    s = WaitUntil([&] { return Load(h.reply_seq) == seq; }, remaining());
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
    if (!ValidateReply(reply, &request, &why))
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

// ---------------------------------------------------------------- validation

bool
AgentChannel::ValidateRequest(const Request& r, std::string* why)
{
    auto bad = [&](std::string message) {
        if (why != nullptr)
        {
            *why = std::move(message);
        }
        return false;
    };
    auto capacity = [&](const char* field, uint32_t value, uint32_t cap) {
        return bad(std::string(field) + " = " + std::to_string(value) + " exceeds capacity " +
                   std::to_string(cap));
    };
    // Read each count once: the checks below use these copies.
    const uint32_t seriesCount = r.series_count;
    const uint32_t windowLen = r.window_len;
    const uint32_t scalarCount = r.scalar_count;
    const uint32_t packetCount = r.packet_count;
    const uint32_t rewardCount = r.reward_count;
    if (seriesCount > agent::kMaxSeries)
    {
        return capacity("series_count", seriesCount, agent::kMaxSeries);
    }
    if (windowLen > agent::kWindow)
    {
        return capacity("window_len", windowLen, agent::kWindow);
    }
    if (scalarCount > agent::kMaxScalars)
    {
        return capacity("scalar_count", scalarCount, agent::kMaxScalars);
    }
    if (packetCount > agent::kMaxPackets)
    {
        return capacity("packet_count", packetCount, agent::kMaxPackets);
    }
    if (rewardCount > agent::kMaxRewards)
    {
        return capacity("reward_count", rewardCount, agent::kMaxRewards);
    }
    if (r.header.sim_time_ns < 0)
    {
        return bad("header.sim_time_ns = " + std::to_string(r.header.sim_time_ns) +
                   " is negative");
    }
    auto finite = [&](double v, const std::string& field) {
        if (std::isnan(v))
        {
            return bad(field + " is NaN");
        }
        if (std::isinf(v))
        {
            return bad(field + " is infinite");
        }
        return true;
    };
    for (uint32_t i = 0; i < seriesCount; ++i)
    {
        for (uint32_t j = 0; j < windowLen; ++j)
        {
            const double v = r.series[i][j];
            if (!std::isfinite(v) || (i < agent::kSeriesDefined && v < 0))
            {
                std::string field = "series[" + std::to_string(i) + "][" + std::to_string(j) + "]";
                if (i < agent::kSeriesDefined)
                {
                    field += std::string(" (") + agent::kSeriesNames[i] + ")";
                }
                if (!finite(v, field))
                {
                    return false;
                }
                return bad(field + " = " + Num(v) + " is negative");
            }
        }
    }
    for (uint32_t i = 0; i < scalarCount; ++i)
    {
        if (!std::isfinite(r.scalars[i]))
        {
            return finite(r.scalars[i], "scalars[" + std::to_string(i) + "]");
        }
    }
    for (uint32_t i = 0; i < packetCount; ++i)
    {
        const agent::PacketDescriptor& p = r.packets[i];
        const bool ok = p.size_bytes >= 0 && p.size_bytes <= agent::kMaxPacketSize &&
                        std::isfinite(p.sojourn_s) && p.sojourn_s >= 0 &&
                        p.traffic_class <= agent::kClassC && p.ecn <= 3;
        if (ok)
        {
            continue; // the message below is only built for a bad descriptor
        }
        const std::string field = "packets[" + std::to_string(i) + "]";
        if (p.size_bytes < 0)
        {
            return bad(field + ".size_bytes = " + std::to_string(p.size_bytes) + " is negative");
        }
        if (p.size_bytes > agent::kMaxPacketSize)
        {
            return bad(field + ".size_bytes = " + std::to_string(p.size_bytes) + " exceeds " +
                       std::to_string(agent::kMaxPacketSize));
        }
        if (!finite(p.sojourn_s, field + ".sojourn_s"))
        {
            return false;
        }
        if (p.sojourn_s < 0)
        {
            return bad(field + ".sojourn_s = " + Num(p.sojourn_s) + " is negative");
        }
        if (p.traffic_class > agent::kClassC)
        {
            return bad(field + ".traffic_class = " + std::to_string(p.traffic_class) +
                       " is neither 0 (L) nor 1 (C)");
        }
        return bad(field + ".ecn = " + std::to_string(p.ecn) + " is not an ECN codepoint 0..3");
    }
    for (uint32_t i = 0; i < rewardCount; ++i)
    {
        if (!std::isfinite(r.rewards[i]))
        {
            return finite(r.rewards[i], "rewards[" + std::to_string(i) + "]");
        }
    }
    return true;
}

bool
AgentChannel::ValidateReply(const Reply& reply, const Request* request, std::string* why)
{
    auto bad = [&](std::string message) {
        if (why != nullptr)
        {
            *why = std::move(message);
        }
        return false;
    };
    const uint32_t status = reply.status;
    const uint32_t actionCount = reply.action_count;
    if (status >= agent::kReplyStatusCount)
    {
        return bad("status = " + std::to_string(status) + " is not 0 (ok), 1 (fallback) or 2 (error)");
    }
    if (actionCount > agent::kMaxPackets)
    {
        return bad("action_count = " + std::to_string(actionCount) + " exceeds capacity " +
                   std::to_string(agent::kMaxPackets));
    }
    const std::pair<const char*, double> probabilities[] = {
        {"p_l_mark", reply.p_l_mark}, {"p_c_drop", reply.p_c_drop}, {"p_c_mark", reply.p_c_mark}};
    for (const auto& [name, p] : probabilities)
    {
        if (std::isnan(p))
        {
            return bad(std::string(name) + " is NaN");
        }
        if (!(p >= 0.0 && p <= 1.0))
        {
            return bad(std::string(name) + " = " + Num(p) + " is not a probability in [0, 1]");
        }
    }
    uint32_t limit = agent::kMaxPackets;
    if (request != nullptr)
    {
        limit = std::min(request->packet_count, agent::kMaxPackets);
        if (actionCount > limit)
        {
            return bad("action_count = " + std::to_string(actionCount) +
                       " exceeds the request's packet_count " + std::to_string(limit));
        }
    }
    for (uint32_t i = 0; i < actionCount; ++i)
    {
        const agent::PacketAction& a = reply.actions[i];
        if (a.action >= agent::kActionCount)
        {
            return bad("actions[" + std::to_string(i) + "].action = " + std::to_string(a.action) +
                       " is not 0 (forward), 1 (drop) or 2 (mark)");
        }
        if (request != nullptr && a.uid != request->packets[i].uid)
        {
            return bad("actions[" + std::to_string(i) + "].uid = " + std::to_string(a.uid) +
                       " does not match packets[" + std::to_string(i) +
                       "].uid = " + std::to_string(request->packets[i].uid));
        }
    }
    return true;
}

// ---------------------------------------------------------------- names, cleanup

const char*
AgentChannel::StatusName(Status status)
{
    switch (status)
    {
    case Status::Ok:
        return "Ok";
    case Status::Timeout:
        return "Timeout";
    case Status::PeerGone:
        return "PeerGone";
    case Status::Invalid:
        return "Invalid";
    case Status::Interrupted:
        return "Interrupted";
    }
    return "?";
}

const char*
AgentChannel::ErrorName(Error error)
{
    switch (error)
    {
    case Error::None:
        return "None";
    case Error::Timeout:
        return "Timeout";
    case Error::PeerClosed:
        return "PeerClosed";
    case Error::PeerDied:
        return "PeerDied";
    case Error::BadMessage:
        return "BadMessage";
    case Error::ProtocolMismatch:
        return "ProtocolMismatch";
    case Error::Closed:
        return "Closed";
    case Error::Usage:
        return "Usage";
    case Error::System:
        return "System";
    case Error::NotFound:
        return "NotFound";
    case Error::Busy:
        return "Busy";
    case Error::Interrupted:
        return "Interrupted";
    }
    return "?";
}

std::string
AgentChannel::NewSegmentName()
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != static_cast<ssize_t>(sizeof(r)))
    {
        static std::atomic<uint64_t> counter{0};
        r = static_cast<uint64_t>(NowNs()) * 0x9e3779b97f4a7c15ULL + counter.fetch_add(1);
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), "/%s%d-%016llx", kPrefix, static_cast<int>(getpid()),
                  static_cast<unsigned long long>(r));
    return buf;
}

uint64_t
AgentChannel::ProcessStartTime(int32_t pid)
{
    char state = 0;
    uint64_t start = 0;
    return ReadProcStat(pid, &state, &start) ? start : 0;
}

bool
AgentChannel::ProcessAlive(int32_t pid, uint64_t startTime)
{
    if (pid <= 0)
    {
        return false;
    }
    if (kill(pid, 0) != 0 && errno == ESRCH)
    {
        return false;
    }
    char state = 0;
    uint64_t start = 0;
    if (!ReadProcStat(pid, &state, &start))
    {
        // No /proc entry: gone (it existed a moment ago), unless /proc is not mounted.
        return access("/proc/self/stat", R_OK) != 0;
    }
    if (state == 'Z' || state == 'X' || state == 'x')
    {
        return false; // dead, waiting to be reaped by its parent
    }
    return startTime == 0 || start == startTime;
}

size_t
AgentChannel::RemoveStaleSegments()
{
    DIR* dir = opendir(kShmDir);
    if (dir == nullptr)
    {
        return 0;
    }
    size_t removed = 0;
    const size_t prefixLen = std::strlen(kPrefix);
    while (dirent* entry = readdir(dir))
    {
        const char* name = entry->d_name;
        if (std::strncmp(name, kPrefix, prefixLen) != 0)
        {
            continue;
        }
        char* end = nullptr;
        long pid = std::strtol(name + prefixLen, &end, 10);
        if (end == name + prefixLen || *end != '-' || pid <= 0 || pid > INT32_MAX)
        {
            continue;
        }
        std::string shmName = std::string("/") + name;
        int fd = shm_open(shmName.c_str(), O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0)
        {
            continue; // not ours to read (another user), or just removed
        }
        struct stat st;
        bool stale = false;
        if (fstat(fd, &st) == 0 && st.st_uid == geteuid())
        {
            uint64_t startTime = 0;
            if (st.st_size >= static_cast<off_t>(agent::kFrozenPrefixSize))
            {
                void* p = mmap(nullptr, agent::kFrozenPrefixSize, PROT_READ, MAP_SHARED, fd, 0);
                if (p != MAP_FAILED)
                {
                    const auto* h = static_cast<const SegmentHeader*>(p);
                    if (Load(h->magic) == agent::kMagic && h->creator_pid == pid)
                    {
                        startTime = h->creator_start_time;
                    }
                    munmap(p, agent::kFrozenPrefixSize);
                }
            }
            stale = !ProcessAlive(static_cast<int32_t>(pid), startTime);
        }
        close(fd);
        if (stale && shm_unlink(shmName.c_str()) == 0)
        {
            ++removed;
        }
    }
    closedir(dir);
    return removed;
}

void
AgentChannel::CleanupRegistered(bool markClosed)
{
    const int32_t self = getpid();
    for (RegistryEntry& e : g_registry)
    {
        if (e.state.load() != 2 || e.ownerPid.load() != self)
        {
            continue; // free, or inherited through fork() from the parent
        }
        SegmentHeader* h = e.header.load();
        if (markClosed && h != nullptr)
        {
            if (e.side.load() == static_cast<int>(Side::Creator))
            {
                Store(h->creator_state, static_cast<uint32_t>(agent::kPartyClosed));
                RingBell(&h->attacher_bell, &h->attacher_waiters);
            }
            else
            {
                Store(h->attacher_state, static_cast<uint32_t>(agent::kPartyClosed));
                RingBell(&h->creator_bell, &h->creator_waiters);
            }
        }
        if (e.unlinkOnCleanup.exchange(false))
        {
            unlink(e.path); // shm_unlink is unlink() under /dev/shm; unlink is signal-safe
        }
    }
}

void
AgentChannel::InstallSignalCleanup()
{
    if (g_handlersInstalled.exchange(true))
    {
        return;
    }
    for (int sig : kCleanupSignals)
    {
        struct sigaction old;
        if (sigaction(sig, nullptr, &old) != 0)
        {
            continue;
        }
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN)
        {
            continue; // ignored signals stay ignored
        }
        g_oldActions[sig] = old;
        struct sigaction sa;
        std::memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = CleanupSignalHandler;
        sa.sa_flags = SA_SIGINFO;
        sigfillset(&sa.sa_mask);
        sigaction(sig, &sa, nullptr);
    }
}

} // namespace ns3
