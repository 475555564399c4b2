/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * Validation of the agent channel's messages (agent-messages.h): counts within capacity,
 * finite values, values in range, and a reply that matches its request. Both ends check
 * every message they post and receive; a failure names the field. Plain C++ (no ns-3
 * library): the Python extension compiles it too.
 */
#ifndef AQM_LLM_AGENT_MESSAGE_VALIDATION_H
#define AQM_LLM_AGENT_MESSAGE_VALIDATION_H

#include "agent-messages.h"

#include <string>

namespace ns3
{
namespace agent
{

/**
 * \ingroup aqm-llm
 * \brief Check a request: every count within capacity, the simulation time not negative,
 * every series point, scalar and reward in use finite (the defined series also >= 0), every
 * packet descriptor in range.
 * \param request the request
 * \param[out] why if not null, set to a message naming the first bad field
 * \return true if valid
 */
bool ValidateRequest(const Request& request, std::string* why);

/**
 * \ingroup aqm-llm
 * \brief Check a reply: a known status, action_count within capacity, probabilities in
 * [0, 1], known action codes; with `request`, also action_count <= its packet_count and each
 * action's uid equal to the uid of the packet at the same index.
 * \param reply the reply
 * \param request the request it answers, or null
 * \param[out] why if not null, set to a message naming the first bad field
 * \return true if valid
 */
bool ValidateReply(const Reply& reply, const Request* request, std::string* why);

} // namespace agent
} // namespace ns3

#endif // AQM_LLM_AGENT_MESSAGE_VALIDATION_H
