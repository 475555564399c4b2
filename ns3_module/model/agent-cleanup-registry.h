/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * The cleanup registry of the agent channel: a fixed-size, lock-free table of this process's
 * live channels that a signal handler can walk. On exit or on a fatal signal every registered
 * segment name is unlinked (so nothing is left in /dev/shm) and, optionally, this end is
 * marked closed and the peer woken (so that it fails promptly instead of timing out).
 * Plain C++ (no ns-3 library): the Python extension compiles it too.
 */
#ifndef AQM_LLM_AGENT_CLEANUP_REGISTRY_H
#define AQM_LLM_AGENT_CLEANUP_REGISTRY_H

#include "agent-messages.h"

#include <string>

namespace ns3
{
namespace agent
{
namespace shm
{

/**
 * \brief Register a channel's segment name.
 * \param name the segment name ("/aqm-llm-...")
 * \param unlinkOnCleanup whether cleanup unlinks the name
 * \return the registry slot, or -1 if the table is full (the channel still works, it is just
 * not cleaned up by signals)
 */
int RegistryAdd(const std::string& name, bool unlinkOnCleanup);

/**
 * \brief Give a registered channel its mapped segment, so that cleanup can mark it closed.
 * \param slot the slot RegistryAdd returned (-1: nothing happens)
 * \param header the segment's control block
 * \param creator whether this process is the creator (else the attacher)
 */
void RegistrySetHeader(int slot, SegmentHeader* header, bool creator);

/**
 * \brief Forget a channel (it was closed normally).
 * \param slot the slot RegistryAdd returned (-1: nothing happens)
 */
void RegistryRemove(int slot);

/**
 * \brief Async-signal-safe: for every registered channel of this process (not those inherited
 * through fork()), unlink its name and, if markClosed, mark this end closed and wake the peer.
 * \param markClosed whether to mark the channels closed
 */
void CleanupRegistered(bool markClosed);

/// \brief Run CleanupRegistered(true) at exit (std::atexit; installed once per process).
void InstallAtExitCleanup();

/**
 * \brief Install handlers for SIGINT/TERM/HUP/QUIT/ABRT/SEGV/BUS (once per process; ignored
 * signals stay ignored) that run CleanupRegistered(true), re-instate the previous action and
 * deliver the signal again.
 */
void InstallSignalCleanup();

} // namespace shm
} // namespace agent
} // namespace ns3

#endif // AQM_LLM_AGENT_CLEANUP_REGISTRY_H
