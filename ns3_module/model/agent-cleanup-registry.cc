/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "agent-cleanup-registry.h"

#include "agent-segment.h"
#include "agent-shm.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace ns3
{
namespace agent
{
namespace shm
{

namespace
{

// One entry per live channel.
struct RegistryEntry
{
    std::atomic<int> state{0}; // 0 free, 1 being filled, 2 live
    std::atomic<int32_t> ownerPid{0};
    std::atomic<SegmentHeader*> header{nullptr};
    std::atomic<bool> creator{true};
    std::atomic<bool> unlinkOnCleanup{false};
    char path[256]{};
};

constexpr int kRegistrySize = 64;
RegistryEntry g_registry[kRegistrySize];
std::atomic<bool> g_atexitInstalled{false};
std::atomic<bool> g_handlersInstalled{false};

constexpr int kCleanupSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS};
struct sigaction g_oldActions[NSIG];

void
CleanupAtExit()
{
    CleanupRegistered(true);
}

void
CleanupSignalHandler(int sig, siginfo_t*, void*)
{
    int savedErrno = errno;
    CleanupRegistered(true);
    // Re-instate whatever was there before (default action, usually) and deliver again.
    sigaction(sig, &g_oldActions[sig], nullptr);
    if (sig != SIGSEGV && sig != SIGBUS)
    {
        raise(sig); // pending until this handler returns
    }
    // SIGSEGV/SIGBUS: returning re-executes the faulting instruction under the old action.
    errno = savedErrno;
}

} // namespace

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
RegistrySetHeader(int slot, SegmentHeader* header, bool creator)
{
    if (slot >= 0)
    {
        g_registry[slot].creator.store(creator);
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
CleanupRegistered(bool markClosed)
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
            if (e.creator.load())
            {
                Store(h->creator_state, static_cast<uint32_t>(kPartyClosed));
                RingBell(&h->attacher_bell, &h->attacher_waiters);
            }
            else
            {
                Store(h->attacher_state, static_cast<uint32_t>(kPartyClosed));
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
InstallAtExitCleanup()
{
    if (!g_atexitInstalled.exchange(true))
    {
        std::atexit(CleanupAtExit);
    }
}

void
InstallSignalCleanup()
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

} // namespace shm
} // namespace agent
} // namespace ns3
