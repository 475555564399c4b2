/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "dual-queue-disc.h"

#include "ns3/log.h"
#include "ns3/queue-item.h"
#include "ns3/simulator.h"

#include <algorithm>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("DualQueueDisc");

NS_OBJECT_ENSURE_REGISTERED(DualQueueDisc);

TypeId
DualQueueDisc::GetTypeId()
{
    static TypeId tid =
        TypeId("ns3::DualQueueDisc").SetParent<QueueDisc>().SetGroupName("AqmLlm");
    return tid;
}

DualQueueDisc::DualQueueDisc()
    : QueueDisc(QueueDiscSizePolicy::MULTIPLE_QUEUES)
{
    NS_LOG_FUNCTION(this);
}

DualQueueDisc::~DualQueueDisc()
{
    NS_LOG_FUNCTION(this);
}

Time
DualQueueDisc::HeadSojourn(std::size_t i) const
{
    if (GetNInternalQueues() <= i)
    {
        return Time(0);
    }
    Ptr<const QueueDiscItem> head = GetInternalQueue(i)->Peek();
    return head ? Simulator::Now() - head->GetTimeStamp() : Time(0);
}

bool
DualQueueDisc::CheckDualQueues(const std::string& name)
{
    NS_LOG_FUNCTION(this << name);
    if (GetNQueueDiscClasses() > 0)
    {
        NS_LOG_ERROR(name << " cannot have classes");
        return false;
    }
    if (GetNPacketFilters() > 0)
    {
        NS_LOG_ERROR(name << " classifies by ECN itself and takes no packet filters");
        return false;
    }
    if (GetNInternalQueues() == 0)
    {
        // Each queue may hold the whole buffer; the shared limit is enforced at enqueue.
        AddInternalQueue(
            CreateObjectWithAttributes<DualQueueFifo>("MaxSize", QueueSizeValue(GetMaxSize())));
        AddInternalQueue(
            CreateObjectWithAttributes<DualQueueFifo>("MaxSize", QueueSizeValue(GetMaxSize())));
    }
    if (GetNInternalQueues() != 2 || !DynamicCast<DualQueueFifo>(GetInternalQueue(L_QUEUE)) ||
        !DynamicCast<DualQueueFifo>(GetInternalQueue(C_QUEUE)))
    {
        NS_LOG_ERROR(name << " needs exactly two internal DualQueueFifo queues (L, C)");
        return false;
    }
    return true;
}

void
DualQueueDisc::ResetDualQueue(dualq::DualQueueScheduler::Type type,
                              double classicWeight,
                              Time timeShift)
{
    m_scheduler.Configure(type, classicWeight, timeShift);
    m_scheduler.Reset();
    m_service.Reset(Simulator::Now());
    m_lastId = 0;
}

bool
DualQueueDisc::EnqueueClassified(Ptr<QueueDiscItem> item)
{
    NS_LOG_FUNCTION(this << item);
    if (GetCurrentSize() + item > GetMaxSize())
    {
        NS_LOG_LOGIC("buffer full, dropping " << item);
        DropBeforeEnqueue(item, FORCED_DROP);
        return false;
    }
    item->SetTimeStamp(Simulator::Now());
    const std::size_t queue = dualq::IsL4s(dualq::EcnOf(item)) ? L_QUEUE : C_QUEUE;
    const bool ok = Fifo(queue)->EnqueueWithId(item, ++m_lastId);
    NS_ASSERT_MSG(ok, "internal queue cannot be full below the shared limit");
    return ok;
}

bool
DualQueueDisc::TakeNext(DequeuePass& pass, bool excludeBlockedTime, Dequeued& out)
{
    Ptr<DualQueueFifo> lq = Fifo(L_QUEUE);
    Ptr<DualQueueFifo> cq = Fifo(C_QUEUE);
    const bool hasL = !lq->IsEmpty();
    const bool hasC = !cq->IsEmpty();
    if (!hasL && !hasC)
    {
        return false;
    }
    out.fromL = m_scheduler.PickL(hasL, hasC, HeadSojourn(L_QUEUE), HeadSojourn(C_QUEUE));
    Ptr<DualQueueFifo> q = out.fromL ? lq : cq;
    out.lPacketsBefore = lq->GetNPackets();
    if (!pass.serviceKnown)
    {
        pass.serviceKnown = true;
        pass.prevService =
            m_service.OnDequeue(pass.now, dualq::IsServiceInstant(*this, q->Peek()));
    }
    out.id = q->PeekId();
    out.item = q->Dequeue();
    NS_ASSERT(out.item);
    out.sojourn = pass.now - out.item->GetTimeStamp();
    out.ecn = dualq::EcnOf(out.item);
    out.markDelay = excludeBlockedTime
                        ? std::max(Time(0), pass.prevService - out.item->GetTimeStamp())
                        : out.sojourn;
    m_scheduler.OnServed(out.fromL, hasL && hasC, out.item->GetSize());
    return true;
}

Ptr<DualQueueFifo>
DualQueueDisc::Fifo(std::size_t i) const
{
    return StaticCast<DualQueueFifo>(GetInternalQueue(i));
}

std::vector<DualQueueDisc::Queued>
DualQueueDisc::PeekInSendOrder(uint32_t n, Time now) const
{
    const auto& lItems = Fifo(L_QUEUE)->Items();
    const auto& cItems = Fifo(C_QUEUE)->Items();
    auto itL = lItems.begin();
    auto itC = cItems.begin();
    auto idL = Fifo(L_QUEUE)->Ids().begin();
    auto idC = Fifo(C_QUEUE)->Ids().begin();
    dualq::DualQueueScheduler scheduler = m_scheduler; // a copy: the real credit stays
    std::vector<Queued> out;
    while (out.size() < n && (itL != lItems.end() || itC != cItems.end()))
    {
        const bool hasL = itL != lItems.end();
        const bool hasC = itC != cItems.end();
        const Time sL = hasL ? now - (*itL)->GetTimeStamp() : Time(0);
        const Time sC = hasC ? now - (*itC)->GetTimeStamp() : Time(0);
        const bool fromL = scheduler.PickL(hasL, hasC, sL, sC);
        Queued q;
        q.item = fromL ? *itL++ : *itC++;
        q.id = fromL ? *idL++ : *idC++;
        q.fromL = fromL;
        scheduler.OnServed(fromL, hasL && hasC, q.item->GetSize());
        out.push_back(q);
    }
    return out;
}

Time
DualQueueDisc::GetLastServiceInstant() const
{
    return m_service.GetLastService();
}

} // namespace ns3
