/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "dual-queue-common.h"

#include "ns3/net-device-queue-interface.h"
#include "ns3/queue-disc.h"
#include "ns3/queue-size.h"

namespace ns3
{

NS_OBJECT_ENSURE_REGISTERED(DualQueueFifo);

namespace dualq
{

uint8_t
EcnOf(Ptr<const QueueDiscItem> item)
{
    uint8_t tos = 0;
    if (!item->GetUint8Value(QueueItem::IP_DSFIELD, tos))
    {
        return ECN_NOT_ECT;
    }
    return tos & 0x03;
}

bool
IsServiceInstant(const QueueDisc& qdisc, Ptr<const QueueDiscItem> item)
{
    Ptr<NetDeviceQueueInterface> ndqi = qdisc.GetNetDeviceQueueInterface();
    if (!ndqi || !item || item->GetTxQueueIndex() >= ndqi->GetNTxQueues())
    {
        return true;
    }
    return !ndqi->GetTxQueue(item->GetTxQueueIndex())->IsStopped();
}

void
DualQueueScheduler::Configure(Type type, double classicWeight, Time timeShift)
{
    m_type = type;
    m_weight = classicWeight;
    m_timeShift = timeShift;
}

void
DualQueueScheduler::Reset()
{
    m_credit = 0.0;
}

bool
DualQueueScheduler::PickL(bool hasL, bool hasC, Time headSojournL, Time headSojournC) const
{
    if (!hasL || !hasC)
    {
        return hasL;
    }
    if (m_type == Type::TIME_SHIFTED)
    {
        return headSojournC - m_timeShift <= headSojournL;
    }
    return m_credit >= 0.0;
}

void
DualQueueScheduler::OnServed(bool fromL, bool both, uint32_t sizeBytes)
{
    if (both && m_type == Type::WEIGHTED)
    {
        const double size = sizeBytes;
        m_credit += fromL ? -m_weight * size : (1.0 - m_weight) * size;
    }
}

double
DualQueueScheduler::GetCredit() const
{
    return m_credit;
}

void
ServiceInstantTracker::Reset(Time now)
{
    m_lastService = m_prevService = now;
}

Time
ServiceInstantTracker::OnDequeue(Time now, bool serviceInstant)
{
    if (serviceInstant)
    {
        if (now > m_lastService)
        {
            m_prevService = m_lastService;
            m_lastService = now;
        }
        return m_prevService;
    }
    return now > m_lastService ? m_lastService : m_prevService;
}

Time
ServiceInstantTracker::GetLastService() const
{
    return m_lastService;
}

} // namespace dualq

TypeId
DualQueueFifo::GetTypeId()
{
    static TypeId tid = TypeId("ns3::DualQueueFifo")
                            .SetParent<Queue<QueueDiscItem>>()
                            .SetGroupName("AqmLlm")
                            .AddConstructor<DualQueueFifo>()
                            .AddAttribute("MaxSize",
                                          "The max queue size",
                                          QueueSizeValue(QueueSize("100p")),
                                          MakeQueueSizeAccessor(&QueueBase::SetMaxSize,
                                                                &QueueBase::GetMaxSize),
                                          MakeQueueSizeChecker());
    return tid;
}

DualQueueFifo::DualQueueFifo() = default;

DualQueueFifo::~DualQueueFifo() = default;

bool
DualQueueFifo::Enqueue(Ptr<QueueDiscItem> item)
{
    return EnqueueWithId(item, ++m_autoId);
}

bool
DualQueueFifo::EnqueueWithId(Ptr<QueueDiscItem> item, uint64_t id)
{
    if (!DoEnqueue(GetContainer().end(), item))
    {
        return false;
    }
    m_ids.push_back(id);
    return true;
}

Ptr<QueueDiscItem>
DualQueueFifo::Dequeue()
{
    Ptr<QueueDiscItem> item = DoDequeue(GetContainer().begin());
    if (item)
    {
        m_ids.pop_front();
    }
    return item;
}

Ptr<QueueDiscItem>
DualQueueFifo::Remove()
{
    Ptr<QueueDiscItem> item = DoRemove(GetContainer().begin());
    if (item)
    {
        m_ids.pop_front();
    }
    return item;
}

uint64_t
DualQueueFifo::PeekId() const
{
    return m_ids.empty() ? 0 : m_ids.front();
}

const std::deque<uint64_t>&
DualQueueFifo::Ids() const
{
    return m_ids;
}

Ptr<const QueueDiscItem>
DualQueueFifo::Peek() const
{
    return DoPeek(GetContainer().begin());
}

const std::list<Ptr<QueueDiscItem>>&
DualQueueFifo::Items() const
{
    return GetContainer();
}

} // namespace ns3
