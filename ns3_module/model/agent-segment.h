/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * Naming and housekeeping of the agent channel's shared-memory segments: the segment names
 * (/aqm-llm-<pid>-<16 hex digits>), the text that describes a segment's layout in mismatch
 * messages, and the removal of segments whose creator process is dead. Plain C++ (no ns-3
 * library): the Python extension compiles it too.
 */
#ifndef AQM_LLM_AGENT_SEGMENT_H
#define AQM_LLM_AGENT_SEGMENT_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace ns3
{
namespace agent
{
namespace shm
{

/// Prefix of every segment name (after the leading '/').
inline constexpr const char kSegmentPrefix[] = "aqm-llm-";
/// Where POSIX shared-memory segments appear as files.
inline constexpr const char kShmDir[] = "/dev/shm";

/**
 * \brief Whether `name` can name a segment: "/" followed by 1..199 characters, no other '/'.
 * \param name the name
 * \return true if valid
 */
bool ValidSegmentName(const std::string& name);

/**
 * \brief A fresh segment name.
 * \return "/aqm-llm-<pid>-<16 hex digits>"
 */
std::string NewSegmentName();

/**
 * \brief Describe a segment layout for messages.
 * \param version protocol version
 * \param headerSize sizeof(SegmentHeader)
 * \param requestSize sizeof(Request)
 * \param replySize sizeof(Reply)
 * \param layoutHash agent::LayoutHash()
 * \return "protocol vN (header H B, request Q B, reply R B, layout 0x...)"
 */
std::string LayoutDescription(uint32_t version,
                              uint32_t headerSize,
                              uint32_t requestSize,
                              uint32_t replySize,
                              uint64_t layoutHash);

/// \brief LayoutDescription of the layout this program was compiled with.
/// \return the text
std::string OurLayout();

/**
 * \brief Remove /dev/shm/aqm-llm-* segments of this user whose creator process is dead.
 * \return how many were removed
 */
size_t RemoveStaleSegments();

} // namespace shm
} // namespace agent
} // namespace ns3

#endif // AQM_LLM_AGENT_SEGMENT_H
