/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef DUAL_QUEUE_COMMON_H
#define DUAL_QUEUE_COMMON_H

#include "ns3/queue.h"
#include "ns3/nstime.h"
#include "ns3/queue-item.h"

#include <cstdint>
#include <deque>
#include <list>

namespace ns3
{

class QueueDisc;

/**
 * \ingroup aqm-llm
 * \brief Pieces shared by the dual-queue (L/C) queue discs of this module
 * (DualPi2QueueDisc, L4sLlmQueueDisc): the RFC 9332 classifier, the scheduler between the two
 * queues, the Wi-Fi service-instant tracker and an inspectable FIFO.
 */
namespace dualq
{

constexpr uint8_t ECN_NOT_ECT = 0x00; //!< Not-ECT
constexpr uint8_t ECN_ECT1 = 0x01;    //!< ECT(1), the L4S identifier
constexpr uint8_t ECN_ECT0 = 0x02;    //!< ECT(0)
constexpr uint8_t ECN_CE = 0x03;      //!< CE

/// \return the ECN field of \p item, or Not-ECT (0) if it has no IP header
uint8_t EcnOf(Ptr<const QueueDiscItem> item);

/// \return whether ECN field \p ecn classifies as L4S (RFC 9332: ECN modulo 2 == 1, i.e.
///         ECT(1) or CE)
inline bool
IsL4s(uint8_t ecn)
{
    return (ecn & 0x01) != 0;
}

/**
 * \return whether a dequeue of \p item now is a service opportunity: false if the item's
 * device transmit queue is stopped (MqQueueDisc children on multi-queue devices dequeue and
 * requeue while it is), true otherwise (also without a NetDeviceQueueInterface)
 */
bool IsServiceInstant(const QueueDisc& qdisc, Ptr<const QueueDiscItem> item);

/**
 * \brief The scheduler between the L and the C queue.
 *
 * Weighted: a byte credit; while both queues are backlogged, serving L costs w * size and
 * serving C earns (1 - w) * size, and C is served while the credit is negative, so C gets the
 * byte share w in the long run. TimeShifted: C is served when its head waited more than
 * TimeShift longer than the L head.
 */
class DualQueueScheduler
{
  public:
    /// Scheduler kind.
    enum class Type
    {
        WEIGHTED,     //!< byte credit, C gets the byte share classicWeight
        TIME_SHIFTED, //!< time-shifted FIFO
    };

    /**
     * \param type scheduler kind
     * \param classicWeight C's byte share (Weighted)
     * \param timeShift time shift (TimeShifted)
     */
    void Configure(Type type, double classicWeight, Time timeShift);
    /// Forget the credit.
    void Reset();

    /**
     * \param hasL the L queue is not empty
     * \param hasC the C queue is not empty
     * \param headSojournL sojourn of the L head (TimeShifted)
     * \param headSojournC sojourn of the C head (TimeShifted)
     * \return whether the next packet comes from L (false if both are empty)
     */
    bool PickL(bool hasL, bool hasC, Time headSojournL, Time headSojournC) const;

    /**
     * \brief Account for a served packet.
     * \param fromL it came from L
     * \param both both queues were backlogged when it was picked
     * \param sizeBytes its size
     */
    void OnServed(bool fromL, bool both, uint32_t sizeBytes);

    /// \return the current credit in bytes (< 0: C's turn)
    double GetCredit() const;

  private:
    Type m_type{Type::WEIGHTED}; //!< kind
    double m_weight{0.1};        //!< C's byte share
    Time m_timeShift{0};         //!< TimeShifted's shift
    double m_credit{0.0};        //!< byte credit
};

/**
 * \brief Service instants of a queue disc behind a device that is served in bursts (Wi-Fi).
 *
 * A service instant is a time at which the queue disc was able to dequeue (the device queue
 * was running). The delay a packet spent in the last stall before its dequeue is
 * max(0, t_prevService - t_enqueue) short of its sojourn (see DualPi2QueueDisc,
 * ExcludeBlockedTime).
 */
class ServiceInstantTracker
{
  public:
    /// Start over at \p now (no service seen yet: both instants are \p now).
    void Reset(Time now);
    /**
     * \brief Note a dequeue attempt.
     * \param now the current time
     * \param serviceInstant whether the device accepts packets now
     * \return the previous service instant to measure marking delays up to
     */
    Time OnDequeue(Time now, bool serviceInstant);
    /// \return the latest service instant
    Time GetLastService() const;

  private:
    Time m_lastService{0}; //!< latest service instant
    Time m_prevService{0}; //!< the one before m_lastService
};

} // namespace dualq

/**
 * \ingroup aqm-llm
 * \brief A drop-tail FIFO of queue disc items whose contents can be read in order (the
 * L4sLlmQueueDisc describes its head-of-queue packets to the agent). Behaves as
 * DropTailQueue<QueueDiscItem>; in addition each item carries an id given at enqueue
 * (EnqueueWithId; Enqueue numbers items 1, 2, ...). ns-3 packet uids do not identify a packet:
 * copies and fragments share them (the TCP segments cut from one send buffer entry all carry
 * the uid of that entry), so a queue disc that must name one packet uses these ids.
 */
class DualQueueFifo : public Queue<QueueDiscItem>
{
  public:
    /// \return the object TypeId
    static TypeId GetTypeId();
    DualQueueFifo();
    ~DualQueueFifo() override;

    bool Enqueue(Ptr<QueueDiscItem> item) override;
    Ptr<QueueDiscItem> Dequeue() override;
    Ptr<QueueDiscItem> Remove() override;
    Ptr<const QueueDiscItem> Peek() const override;

    /**
     * \brief Enqueue with an id.
     * \param item the item
     * \param id its id
     * \return whether it was enqueued
     */
    bool EnqueueWithId(Ptr<QueueDiscItem> item, uint64_t id);
    /// \return the id of the head item (0 if empty)
    uint64_t PeekId() const;

    /// \return the items, head first
    const std::list<Ptr<QueueDiscItem>>& Items() const;
    /// \return the ids of the items, head first
    const std::deque<uint64_t>& Ids() const;

  private:
    std::deque<uint64_t> m_ids; //!< ids, in the order of the items
    uint64_t m_autoId{0};       //!< last id given by Enqueue
};

} // namespace ns3

#endif /* DUAL_QUEUE_COMMON_H */
