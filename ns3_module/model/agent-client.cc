/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "agent-client.h"

#include "agent-channel.h"
#include "aqm-json.h"

#include "ns3/log.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <sstream>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("AgentClient");

AgentClient::AgentClient() = default;

AgentClient::~AgentClient() = default;

void
AgentClient::Attach(const std::string& channelName, const Options& options)
{
    m_options = options;
    m_channel.reset();
    m_dead = false;
    m_firstCall = true;
    m_consecutiveTimeouts = 0;
    if (channelName.empty())
    {
        m_dead = true;
        m_deadOutcome = OUTCOME_NO_AGENT;
        if (m_options.agentActs)
        {
            WarnOnce(OUTCOME_NO_AGENT,
                     "no agent channel (ChannelName is empty): every decision epoch uses the "
                     "DualPI2 fallback, counted as fallbacks");
        }
        return;
    }
    AgentChannel::Options channelOptions;
    channelOptions.installSignalHandlers = false; // the attacher unlinks the name at once
    auto opened = AgentChannel::Attach(channelName, channelOptions);
    if (opened.channel)
    {
        m_channel = std::move(opened.channel);
        return;
    }
    m_dead = true;
    m_deadOutcome = OUTCOME_NO_AGENT;
    WarnOnce(OUTCOME_NO_AGENT,
             opened.message +
                 "; every decision epoch uses the DualPI2 fallback, counted as fallbacks");
}

void
AgentClient::Close()
{
    m_channel.reset();
}

void
AgentClient::WarnOnce(Outcome outcome, const std::string& message)
{
    NS_LOG_WARN(message);
    if (outcome < OUTCOME_COUNT && !m_warned[outcome])
    {
        m_warned[outcome] = true;
        std::cerr << "L4sLlmQueueDisc: " << message << std::endl;
    }
}

AgentClient::Outcome
AgentClient::Call(agent::Request& request, agent::Reply& reply, double& latency)
{
    latency = 0;
    std::memset(&reply, 0, sizeof(reply));
    if (!m_channel || m_dead)
    {
        return m_deadOutcome;
    }
    const double timeout = m_firstCall
                               ? std::max(m_options.firstCallTimeout, m_options.timeout).GetSeconds()
                               : m_options.timeout.GetSeconds();
    m_firstCall = false;
    const uint64_t seqBefore = m_channel->LastRequestSeq();
    const auto t0 = std::chrono::steady_clock::now();
    const AgentChannel::Status s = m_channel->Call(request, reply, timeout);
    latency = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (m_channel->LastRequestSeq() != seqBefore)
    {
        request.header.seq = m_channel->LastRequestSeq(); // as the channel carried it
    }
    const std::string epoch = "epoch " + std::to_string(request.header.epoch) + ": ";
    const bool acts = m_options.agentActs;
    const std::string thisEpoch = acts ? "; this epoch uses the DualPI2 fallback"
                                       : "; the teacher acts (the agent runs in shadow)";
    const std::string restOfRun =
        acts ? "; the rest of the run uses the DualPI2 fallback" : "; the agent is no longer asked";
    switch (s)
    {
    case AgentChannel::Status::Ok:
        m_consecutiveTimeouts = 0;
        m_latencies.push_back(latency);
        return reply.status == agent::kReplyFallback ? OUTCOME_AGENT_FALLBACK : OUTCOME_OK;
    case AgentChannel::Status::Timeout:
    case AgentChannel::Status::Interrupted:
        WarnOnce(OUTCOME_TIMEOUT,
                 epoch + "agent timed out (" + m_channel->LastError() + ")" + thisEpoch);
        ++m_consecutiveTimeouts;
        if (m_options.maxConsecutiveTimeouts > 0 &&
            m_consecutiveTimeouts >= m_options.maxConsecutiveTimeouts)
        {
            WarnOnce(OUTCOME_ABANDONED,
                     epoch + "agent abandoned after " + std::to_string(m_consecutiveTimeouts) +
                         " timeouts in a row" + restOfRun);
            m_dead = true;
            m_deadOutcome = OUTCOME_ABANDONED;
            m_channel->Close();
        }
        return OUTCOME_TIMEOUT;
    case AgentChannel::Status::PeerGone:
        WarnOnce(OUTCOME_PEER_GONE,
                 epoch + "agent gone (" + m_channel->LastError() + ")" + restOfRun);
        m_dead = true;
        m_deadOutcome = OUTCOME_PEER_GONE;
        return OUTCOME_PEER_GONE;
    case AgentChannel::Status::Invalid:
        break;
    }
    m_consecutiveTimeouts = 0;
    WarnOnce(OUTCOME_INVALID, epoch + m_channel->LastError() + thisEpoch);
    return OUTCOME_INVALID;
}

void
AgentClient::Count(Outcome outcome)
{
    ++m_counts[outcome];
}

uint64_t
AgentClient::GetCount(Outcome outcome) const
{
    return outcome < OUTCOME_COUNT ? m_counts[outcome] : 0;
}

std::string
AgentClient::GetFailureSummary() const
{
    return "timeouts " + std::to_string(m_counts[OUTCOME_TIMEOUT]) + ", invalid " +
           std::to_string(m_counts[OUTCOME_INVALID]) + ", agent gone " +
           std::to_string(m_counts[OUTCOME_PEER_GONE]) + ", abandoned " +
           std::to_string(m_counts[OUTCOME_ABANDONED]) + ", no agent " +
           std::to_string(m_counts[OUTCOME_NO_AGENT]);
}

std::string
AgentClient::GetCountsJson() const
{
    std::ostringstream os;
    os << "{";
    bool first = true;
    for (uint32_t i = 0; i < OUTCOME_COUNT; ++i)
    {
        if (m_counts[i] == 0)
        {
            continue;
        }
        os << (first ? "" : ", ") << JsonString(OutcomeName(i)) << ": " << m_counts[i];
        first = false;
    }
    os << "}";
    return os.str();
}

std::string
AgentClient::GetLatencyJson() const
{
    if (m_latencies.empty())
    {
        return "null";
    }
    std::vector<double> v = m_latencies;
    std::sort(v.begin(), v.end());
    double sum = 0;
    for (double x : v)
    {
        sum += x;
    }
    auto q = [&](double f) {
        return v[std::min(v.size() - 1, size_t(std::ceil(f * v.size())) - (f > 0 ? 1 : 0))];
    };
    std::ostringstream os;
    os << "{\"count\": " << v.size() << ", \"mean\": " << JsonNumber(sum / v.size() * 1e3)
       << ", \"p50\": " << JsonNumber(q(0.5) * 1e3) << ", \"p99\": " << JsonNumber(q(0.99) * 1e3)
       << ", \"max\": " << JsonNumber(v.back() * 1e3) << "}";
    return os.str();
}

const char*
AgentClient::OutcomeName(uint32_t outcome)
{
    switch (outcome)
    {
    case OUTCOME_NOT_CONSULTED:
        return "not_consulted";
    case OUTCOME_OK:
        return "ok";
    case OUTCOME_AGENT_FALLBACK:
        return "agent_requested_fallback";
    case OUTCOME_TIMEOUT:
        return "timeout";
    case OUTCOME_INVALID:
        return "invalid";
    case OUTCOME_PEER_GONE:
        return "peer_gone";
    case OUTCOME_NO_AGENT:
        return "no_agent";
    case OUTCOME_ABANDONED:
        return "abandoned";
    }
    return "?";
}

} // namespace ns3
