/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "decision-schedule.h"

#include "ns3/simulator.h"

#include <algorithm>

namespace ns3
{

EpochDecision
EpochDecision::FromReply(int32_t actor, uint64_t epoch, const agent::Reply& reply)
{
    EpochDecision d;
    d.actor = actor;
    d.epoch = epoch;
    const uint32_t n = std::min(reply.action_count, agent::kMaxPackets);
    d.actions.reserve(n);
    for (uint32_t i = 0; i < n; ++i)
    {
        d.actions.emplace_back(reply.actions[i].uid, reply.actions[i].action);
    }
    d.pLMark = reply.p_l_mark;
    d.pCDrop = reply.p_c_drop;
    d.pCMark = reply.p_c_mark;
    return d;
}

std::optional<uint8_t>
EpochDecision::FindAction(uint64_t id) const
{
    for (const auto& [uid, action] : actions)
    {
        if (uid == id)
        {
            return action;
        }
    }
    return std::nullopt;
}

DecisionSchedule::~DecisionSchedule()
{
    Reset();
}

void
DecisionSchedule::Reset()
{
    for (auto& event : m_events)
    {
        Simulator::Cancel(event);
    }
    m_events.clear();
    m_current = EpochDecision();
    m_pending.clear();
}

void
DecisionSchedule::Install(EpochDecision d, Time delay)
{
    if (delay.IsZero())
    {
        m_current = std::move(d);
        return;
    }
    m_pending.push_back(std::move(d));
    m_events.push_back(Simulator::Schedule(delay, &DecisionSchedule::InstallPending, this));
}

const EpochDecision&
DecisionSchedule::GetCurrent() const
{
    return m_current;
}

void
DecisionSchedule::InstallPending()
{
    if (m_pending.empty())
    {
        return;
    }
    m_current = std::move(m_pending.front());
    m_pending.pop_front();
    m_events.pop_front();
}

} // namespace ns3
