/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_AGENT_CLIENT_H
#define AQM_LLM_AGENT_CLIENT_H

#include "agent-messages.h"

#include "ns3/nstime.h"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ns3
{

class AgentChannel;

/**
 * \ingroup aqm-llm
 * \brief The queue disc's side of the agent: attaches the agent's channel, makes one call per
 * epoch with its timeout, and decides when the agent is given up (gone, abandoned after
 * MaxConsecutiveTimeouts timeouts in a row, or never attached). Reports each kind of failure
 * once on stderr and keeps the wall time of successful calls.
 *
 * It knows nothing of queues or decisions: L4sLlmQueueDisc turns an Outcome into an actor
 * (the agent, or the DualPI2 fallback) and counts it.
 */
class AgentClient
{
  public:
    /// What became of the agent in an epoch.
    enum Outcome : uint32_t
    {
        OUTCOME_NOT_CONSULTED = 0, //!< no agent call this epoch (teacher mode)
        OUTCOME_OK = 1,            //!< valid reply, status ok
        OUTCOME_AGENT_FALLBACK = 2, //!< valid reply asking for the fallback
        OUTCOME_TIMEOUT = 3,       //!< no reply within the timeout
        OUTCOME_INVALID = 4,       //!< invalid reply, or the agent rejected the request
        OUTCOME_PEER_GONE = 5,     //!< the agent is gone (this epoch or before)
        OUTCOME_NO_AGENT = 6,      //!< no channel configured, or attaching failed
        OUTCOME_ABANDONED = 7,     //!< given up after MaxConsecutiveTimeouts
        OUTCOME_COUNT = 8,
    };

    /// Timeouts and what a failure means for the run.
    struct Options
    {
        Time timeout{Seconds(5)};            //!< per-call timeout
        Time firstCallTimeout{Seconds(30)};  //!< the first call's (the larger of the two applies)
        uint32_t maxConsecutiveTimeouts{10}; //!< abandon after this many in a row (0: never)
        bool agentActs{true};                //!< the agent acts (else it runs in shadow); wording
    };

    AgentClient();
    ~AgentClient();

    /**
     * \brief Attach the agent's channel (the agent created it). An empty name or a failed
     * attach leaves the client without an agent (OUTCOME_NO_AGENT), with a warning when the
     * agent was to act (a failed attach always warns).
     * \param channelName the channel name (may be empty)
     * \param options timeouts and role
     */
    void Attach(const std::string& channelName, const Options& options);

    /**
     * \brief One call.
     * \param request the epoch's request; its header.seq is set to the seq the channel gave it
     * \param reply the reply (valid if the return is OUTCOME_OK or OUTCOME_AGENT_FALLBACK)
     * \param latency set to the call's wall time, s (0 without a call)
     * \return the outcome
     */
    Outcome Call(agent::Request& request, agent::Reply& reply, double& latency);

    /// Close the channel: the agent sees the end of the run.
    void Close();

    /// Count one epoch's \p outcome.
    void Count(Outcome outcome);
    /// \return the epochs whose outcome was \p outcome
    uint64_t GetCount(Outcome outcome) const;
    /// \return the failures counted, in words ("timeouts 0, invalid 0, agent gone 0, ...")
    std::string GetFailureSummary() const;
    /// \return the non-zero outcome counts as a JSON object ({"ok": 120, ...})
    std::string GetCountsJson() const;

    /// \return the wall times of the successful calls as a JSON object (ms), or "null"
    std::string GetLatencyJson() const;

    /// \return \p outcome as a word ("timeout")
    static const char* OutcomeName(uint32_t outcome);

  private:
    /// Warn once per kind on stderr (every time in the log).
    void WarnOnce(Outcome outcome, const std::string& message);

    Options m_options;                        //!< timeouts and role
    std::unique_ptr<AgentChannel> m_channel;  //!< attached channel (null: none)
    bool m_dead{false};                       //!< gone or abandoned: never call again
    Outcome m_deadOutcome{OUTCOME_NO_AGENT};  //!< outcome reported while dead
    bool m_firstCall{true};                   //!< no call made yet
    uint32_t m_consecutiveTimeouts{0};        //!< timeouts in a row
    std::vector<double> m_latencies;          //!< wall time of successful calls, s
    std::array<bool, OUTCOME_COUNT> m_warned{}; //!< warned about this outcome
    std::array<uint64_t, OUTCOME_COUNT> m_counts{}; //!< epochs by outcome
};

} // namespace ns3

#endif /* AQM_LLM_AGENT_CLIENT_H */
