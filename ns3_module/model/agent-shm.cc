/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "agent-shm.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ns3
{
namespace agent
{
namespace shm
{

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

uint64_t
ProcessStartTime(int32_t pid)
{
    char state = 0;
    uint64_t start = 0;
    return ReadProcStat(pid, &state, &start) ? start : 0;
}

bool
ProcessAlive(int32_t pid, uint64_t startTime)
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

} // namespace shm
} // namespace agent
} // namespace ns3
