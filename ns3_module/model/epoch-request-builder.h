/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_EPOCH_REQUEST_BUILDER_H
#define AQM_LLM_EPOCH_REQUEST_BUILDER_H

#include "agent-messages.h"

#include "ns3/nstime.h"

#include <array>
#include <cstdint>

namespace ns3
{

/**
 * \ingroup aqm-llm
 * \brief The measurements of L4sLlmQueueDisc's decision epochs and the agent::Request built
 * from them: per-interval counts (arrivals, departures, marks, drops, sojourns), the window of
 * the last W intervals of each series, the capacity estimate, the burst allowance and the
 * rewards of the interval just closed. The queue disc reports events and the queue's state;
 * the packet descriptors are the queue disc's (it knows its queues).
 *
 * Series (oldest first; intervals before the start read 0, the capacity row the initial
 * estimate): L and C head-of-line sojourn at the end of the interval (s), queue bytes at the
 * end, arrival rate (bits offered, forced drops included) and departure rate (bits forwarded),
 * CE marks and drops in the interval, and the capacity estimate (bit/s: the departure rate of
 * an interval in which the queue never ran empty; else the previous estimate, or the
 * departure rate if higher). Rewards: utilisation (departure rate / capacity, in [0, 1]), mean
 * sojourn of the L and of the C packets dequeued in the interval (s), loss (drops /
 * arrivals, in [0, 1]).
 */
class EpochRequestBuilder
{
  public:
    /**
     * \brief Start over.
     * \param capacityBps the initial capacity estimate (0: none)
     * \param maxBurst the burst allowance to start with
     * \param idle the queue is empty now
     */
    void Reset(double capacityBps, Time maxBurst, bool idle);

    /// A packet arrived (forced drops included). \param bytes its size
    void OnArrival(uint32_t bytes);
    /// A packet was dropped (at enqueue or at dequeue).
    void OnDrop();
    /// A packet was CE-marked.
    void OnMark();
    /// A packet was dequeued. \param isL from the L queue \param sojourn its sojourn
    void OnSojourn(bool isL, Time sojourn);
    /// A packet was forwarded. \param bytes its size
    void OnDeparture(uint32_t bytes);
    /// The queue disc ran empty.
    void OnIdle();

    /**
     * \brief Close the interval [previous epoch, now) into the window and compute its rewards.
     * \param interval the interval's length
     * \param headL the L queue's head-of-line sojourn now
     * \param headC the C queue's head-of-line sojourn now
     * \param queueBytes bytes queued now
     * \param empty the queue disc is empty now
     */
    void CloseInterval(Time interval, Time headL, Time headC, uint64_t queueBytes, bool empty);

    /**
     * \brief The burst allowance of RFC 8033 on the DualPI2 controller's state after its update:
     * it runs down by one interval and is restored while p' is 0 and the C delay stayed below
     * half the target for two epochs.
     * \param interval the epoch length
     * \param probBase the controller's p'
     * \param delayC the C queue's delay now
     * \param target the controller's target
     * \param maxBurst the allowance restored
     */
    void UpdateBurstAllowance(Time interval, double probBase, Time delayC, Time target, Time maxBurst);

    /**
     * \brief Start the epoch's request: zeroed, then header, series, scalars and rewards
     * (the caller adds the packet descriptors).
     * \param request the request
     * \param epoch epoch index
     * \param now the epoch's time
     * \param probBase the DualPI2 fallback's p'
     * \param probL its p_L on the L head
     * \param probC its p_C
     */
    void Fill(agent::Request& request,
              uint64_t epoch,
              Time now,
              double probBase,
              double probL,
              double probC) const;

  private:
    std::array<std::array<double, agent::kWindow>, agent::kSeriesDefined> m_history{}; //!< window
    std::array<double, agent::kRewardDefined> m_rewards{}; //!< rewards of the last interval
    double m_capacity{0};       //!< capacity estimate, bit/s
    double m_burstAllowance{0}; //!< s
    double m_prevDelayC{0};     //!< C delay at the previous epoch, s
    // The current interval
    uint64_t m_arrivedBytes{0};           //!< bytes offered
    uint64_t m_arrivedPackets{0};         //!< packets offered
    uint64_t m_departedBytes{0};          //!< bytes forwarded
    uint64_t m_marks{0};                  //!< CE marks
    uint64_t m_drops{0};                  //!< drops
    std::array<double, 2> m_sojournSum{}; //!< sojourn sums, L and C, s
    std::array<uint64_t, 2> m_sojournCount{}; //!< dequeued packets, L and C
    bool m_idle{true};                    //!< the queue disc was empty at some point
};

} // namespace ns3

#endif /* AQM_LLM_EPOCH_REQUEST_BUILDER_H */
