/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_DECISION_SCHEDULE_H
#define AQM_LLM_DECISION_SCHEDULE_H

#include "agent-messages.h"

#include "ns3/event-id.h"
#include "ns3/nstime.h"

#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

namespace ns3
{

/**
 * \ingroup aqm-llm
 * \brief One epoch's decision as L4sLlmQueueDisc applies it at dequeue: who decided, the
 * per-packet actions (by packet id) and the epoch probabilities for the packets they do not
 * cover.
 */
struct EpochDecision
{
    /// Who decided (>= 0: teacher index).
    enum ActorCode : int32_t
    {
        ACTOR_FALLBACK = -2, //!< the DualPI2 fallback
        ACTOR_AGENT = -1,    //!< the agent
    };

    int32_t actor{ACTOR_FALLBACK};                     //!< ActorCode or teacher index
    uint64_t epoch{0};                                 //!< epoch it came from
    std::vector<std::pair<uint64_t, uint8_t>> actions; //!< (packet id, agent::ActionCode)
    double pLMark{0};                                  //!< p_l_mark
    double pCDrop{0};                                  //!< p_c_drop
    double pCMark{0};                                  //!< p_c_mark

    /**
     * \param actor who decided
     * \param epoch the epoch
     * \param reply the reply that holds the decision
     * \return the decision
     */
    static EpochDecision FromReply(int32_t actor, uint64_t epoch, const agent::Reply& reply);

    /// \return the per-packet action for packet \p id, if the decision has one
    std::optional<uint8_t> FindAction(uint64_t id) const;
};

/**
 * \ingroup aqm-llm
 * \brief The decision in force and the ones waiting for their DecisionDelay: a decision takes
 * effect a fixed simulated delay after its epoch (0: at once) and stays in force until the next
 * one does, so decisions take effect in epoch order whoever made them.
 */
class DecisionSchedule
{
  public:
    DecisionSchedule() = default;
    /// Not copyable: scheduled events hold this object's address.
    DecisionSchedule(const DecisionSchedule&) = delete;
    /// Not copyable: scheduled events hold this object's address.
    DecisionSchedule& operator=(const DecisionSchedule&) = delete;
    ~DecisionSchedule();

    /// Back to the fallback's decision in force; pending decisions and their events cancelled.
    void Reset();
    /**
     * \brief Take \p d into force after \p delay (at once if zero).
     * \param d the decision
     * \param delay simulated time until it takes effect
     */
    void Install(EpochDecision d, Time delay);
    /// \return the decision in force
    const EpochDecision& GetCurrent() const;

  private:
    /// Event: the oldest pending decision takes effect.
    void InstallPending();

    EpochDecision m_current;            //!< in force
    std::deque<EpochDecision> m_pending; //!< waiting for their delay
    std::deque<EventId> m_events;        //!< their events, in the same order
};

} // namespace ns3

#endif /* AQM_LLM_DECISION_SCHEDULE_H */
