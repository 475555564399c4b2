/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * The operating-system primitives under AgentChannel: atomic access to words that live in a
 * segment shared between two processes, futex doorbells, the monotonic clock and the liveness
 * of a peer process. Plain C++ (no ns-3 library): the Python extension compiles it too.
 */
#ifndef AQM_LLM_AGENT_SHM_H
#define AQM_LLM_AGENT_SHM_H

#include <atomic>
#include <cstdint>
#include <string>

namespace ns3
{
namespace agent
{

/**
 * \ingroup aqm-llm
 * \brief Shared-memory plumbing of the agent channel (AgentChannel's implementation; not a
 * public API of the module).
 */
namespace shm
{

/**
 * \brief Atomic load of a field of the shared segment (the segment is plain old data, so the
 * fields are accessed through std::atomic_ref).
 * \param field the field
 * \param order the memory order (acquire by default)
 * \return the value
 */
template <class T>
T
Load(const T& field, std::memory_order order = std::memory_order_acquire)
{
    return std::atomic_ref<T>(const_cast<T&>(field)).load(order);
}

/**
 * \brief Atomic store into a field of the shared segment.
 * \param field the field
 * \param value the value to store
 * \param order the memory order (release by default)
 */
template <class T>
void
Store(T& field, T value, std::memory_order order = std::memory_order_release)
{
    std::atomic_ref<T>(field).store(value, order);
}

/// \brief Tell the CPU that this is a spin-wait loop (pause / yield).
inline void
CpuRelax()
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

/// \brief The monotonic clock, ns.
int64_t NowNs();

/**
 * \brief Seconds to nanoseconds for timeouts and budgets.
 * \param s seconds
 * \return ns; 0 for s <= 0 or NaN, at most 1e9 s
 */
int64_t SecondsToNs(double s);

/**
 * \brief Sleep on a futex word shared between processes while it holds `expected`.
 * \param word the futex word
 * \param expected the value seen before deciding to sleep
 * \param timeoutNs the longest sleep, ns
 * \return the futex system call's result (errno tells why on -1)
 */
long FutexWait(uint32_t* word, uint32_t expected, int64_t timeoutNs);

/**
 * \brief Wake every process sleeping on a futex word.
 * \param word the futex word
 */
void FutexWake(uint32_t* word);

/**
 * \brief Ring a doorbell: bump it (so that a waiter about to sleep sees a change) and wake
 * the sleepers if the waiter count says there are any. Async-signal-safe.
 * \param bell the doorbell's futex word
 * \param waiters the doorbell's waiter count
 */
void RingBell(uint32_t* bell, uint32_t* waiters);

/**
 * \brief Format a 64-bit word as 0x followed by 16 hex digits.
 * \param v the value
 * \return the text
 */
std::string Hex(uint64_t v);

/**
 * \brief Read a process's state and start time from /proc/<pid>/stat.
 * \param pid the process
 * \param[out] state field 3 (R, S, Z, ...)
 * \param[out] startTime field 22 (start time in clock ticks since boot)
 * \return false if the file cannot be read or parsed
 */
bool ReadProcStat(int32_t pid, char* state, uint64_t* startTime);

/**
 * \brief A process's start time as /proc/<pid>/stat reports it.
 * \param pid the process
 * \return the start time, 0 if unknown
 */
uint64_t ProcessStartTime(int32_t pid);

/**
 * \brief Whether a process is alive.
 * \param pid the process
 * \param startTime its start time (guards against pid reuse), or 0 not to check it
 * \return true if `pid` exists, is not a zombie and (if startTime != 0) started at startTime
 */
bool ProcessAlive(int32_t pid, uint64_t startTime);

} // namespace shm
} // namespace agent
} // namespace ns3

#endif // AQM_LLM_AGENT_SHM_H
