/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * AgentChannel, part 1: opening (create, attach), closing, accessors and names. The waits and
 * the request/reply steps are in agent-channel-protocol.cc; the operating-system primitives in
 * agent-shm, agent-segment and agent-cleanup-registry; message checks in
 * agent-message-validation.
 */
#include "agent-channel.h"

#include "agent-cleanup-registry.h"
#include "agent-message-validation.h"
#include "agent-segment.h"
#include "agent-shm.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ns3
{

using agent::Reply;
using agent::Request;
using agent::SegmentHeader;
using agent::shm::Hex;
using agent::shm::LayoutDescription;
using agent::shm::Load;
using agent::shm::OurLayout;
using agent::shm::RegistryAdd;
using agent::shm::RegistryRemove;
using agent::shm::RegistrySetHeader;
using agent::shm::RingBell;
using agent::shm::SecondsToNs;
using agent::shm::Store;
using agent::shm::ValidSegmentName;

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
    if (!ValidSegmentName(name))
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
    RegistrySetHeader(slot, h, true);

    agent::shm::InstallAtExitCleanup();
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
    if (!ValidSegmentName(name))
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
    RegistrySetHeader(slot, h, false);
    agent::shm::InstallAtExitCleanup();
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

// ---------------------------------------------------------------- names

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


// ---------------------------------------------------------------- static helpers (forwarded)

bool
AgentChannel::ValidateRequest(const Request& request, std::string* why)
{
    return agent::ValidateRequest(request, why);
}

bool
AgentChannel::ValidateReply(const Reply& reply, const Request* request, std::string* why)
{
    return agent::ValidateReply(reply, request, why);
}

std::string
AgentChannel::NewSegmentName()
{
    return agent::shm::NewSegmentName();
}

uint64_t
AgentChannel::ProcessStartTime(int32_t pid)
{
    return agent::shm::ProcessStartTime(pid);
}

bool
AgentChannel::ProcessAlive(int32_t pid, uint64_t startTime)
{
    return agent::shm::ProcessAlive(pid, startTime);
}

size_t
AgentChannel::RemoveStaleSegments()
{
    return agent::shm::RemoveStaleSegments();
}

void
AgentChannel::CleanupRegistered(bool markClosed)
{
    agent::shm::CleanupRegistered(markClosed);
}

void
AgentChannel::InstallSignalCleanup()
{
    agent::shm::InstallSignalCleanup();
}

} // namespace ns3
