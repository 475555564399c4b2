/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "epoch-request-builder.h"

#include <algorithm>
#include <cstring>

namespace ns3
{

void
EpochRequestBuilder::Reset(double capacityBps, Time maxBurst, bool idle)
{
    for (auto& row : m_history)
    {
        row.fill(0.0);
    }
    m_capacity = capacityBps;
    m_history[agent::kSeriesCapacity].fill(m_capacity);
    m_burstAllowance = maxBurst.GetSeconds();
    m_prevDelayC = 0;
    m_idle = idle;
}

void
EpochRequestBuilder::OnArrival(uint32_t bytes)
{
    ++m_arrivedPackets;
    m_arrivedBytes += bytes;
}

void
EpochRequestBuilder::OnDrop()
{
    ++m_drops;
}

void
EpochRequestBuilder::OnMark()
{
    ++m_marks;
}

void
EpochRequestBuilder::OnSojourn(bool isL, Time sojourn)
{
    m_sojournSum[isL ? 0 : 1] += sojourn.GetSeconds();
    ++m_sojournCount[isL ? 0 : 1];
}

void
EpochRequestBuilder::OnDeparture(uint32_t bytes)
{
    m_departedBytes += bytes;
}

void
EpochRequestBuilder::OnIdle()
{
    m_idle = true;
}

void
EpochRequestBuilder::CloseInterval(Time interval,
                                   Time headL,
                                   Time headC,
                                   uint64_t queueBytes,
                                   bool empty)
{
    const double dt = interval.GetSeconds();
    const double departure = m_departedBytes * 8.0 / dt;
    const double arrival = m_arrivedBytes * 8.0 / dt;
    if (empty)
    {
        m_idle = true;
    }
    if (!m_idle && departure > 0)
    {
        m_capacity = departure; // backlogged throughout: the link ran at capacity
    }
    else
    {
        m_capacity = std::max(m_capacity, departure);
    }
    const double values[agent::kSeriesDefined] = {
        headL.GetSeconds(),
        headC.GetSeconds(),
        double(queueBytes),
        arrival,
        departure,
        double(m_marks),
        double(m_drops),
        m_capacity,
    };
    for (uint32_t s = 0; s < agent::kSeriesDefined; ++s)
    {
        auto& row = m_history[s];
        std::copy(row.begin() + 1, row.end(), row.begin());
        row[agent::kWindow - 1] = values[s];
    }
    m_rewards[agent::kRewardUtilization] =
        m_capacity > 0 ? std::min(1.0, departure / m_capacity) : 0.0;
    m_rewards[agent::kRewardLDelay] =
        m_sojournCount[0] ? m_sojournSum[0] / m_sojournCount[0] : 0.0;
    m_rewards[agent::kRewardCDelay] =
        m_sojournCount[1] ? m_sojournSum[1] / m_sojournCount[1] : 0.0;
    m_rewards[agent::kRewardLoss] = m_arrivedPackets
                                        ? std::min(1.0, double(m_drops) / m_arrivedPackets)
                                        : (m_drops ? 1.0 : 0.0);

    m_arrivedBytes = m_arrivedPackets = m_departedBytes = 0;
    m_marks = m_drops = 0;
    m_sojournSum.fill(0.0);
    m_sojournCount.fill(0);
    m_idle = empty;
}

void
EpochRequestBuilder::UpdateBurstAllowance(Time interval,
                                          double probBase,
                                          Time delayC,
                                          Time target,
                                          Time maxBurst)
{
    const double half = target.GetSeconds() / 2;
    m_burstAllowance = std::max(0.0, m_burstAllowance - interval.GetSeconds());
    if (probBase == 0 && delayC.GetSeconds() < half && m_prevDelayC < half)
    {
        m_burstAllowance = maxBurst.GetSeconds();
    }
    m_prevDelayC = delayC.GetSeconds();
}

void
EpochRequestBuilder::Fill(agent::Request& r,
                          uint64_t epoch,
                          Time now,
                          double probBase,
                          double probL,
                          double probC) const
{
    std::memset(&r, 0, sizeof(r));
    r.header.epoch = epoch;
    r.header.sim_time_ns = now.GetNanoSeconds();
    r.series_count = agent::kSeriesDefined;
    r.window_len = agent::kWindow;
    for (uint32_t s = 0; s < agent::kSeriesDefined; ++s)
    {
        std::copy(m_history[s].begin(), m_history[s].end(), r.series[s]);
    }
    r.scalar_count = agent::kScalarDefined;
    r.scalars[agent::kScalarBurstAllowance] = m_burstAllowance;
    r.scalars[agent::kScalarPPrime] = probBase;
    r.scalars[agent::kScalarPL] = probL;
    r.scalars[agent::kScalarPC] = probC;
    r.reward_count = agent::kRewardDefined;
    std::copy(m_rewards.begin(), m_rewards.end(), r.rewards);
}

} // namespace ns3
