/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "dual-queue-disc.h"

#include "ns3/boolean.h"
#include "ns3/double.h"
#include "ns3/log.h"
#include "ns3/queue-item.h"
#include "ns3/random-variable-stream.h"
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

TypeId
DualQueueDisc::AddDualQueueAttributes(TypeId tid, const AttributeStyle& style)
{
    const std::string& pi2 = style.controller;
    return tid
        .AddAttribute("MaxSize",
                      "The shared buffer of both queues, in packets (\"1000p\") or bytes "
                      "(\"1500000B\"); a packet that does not fit is dropped at enqueue.",
                      QueueSizeValue(QueueSize("10000p")),
                      MakeQueueSizeAccessor(&QueueDisc::SetMaxSize, &QueueDisc::GetMaxSize),
                      MakeQueueSizeChecker())
        .AddAttribute("UseEcn",
                      "Mark ECT(0) Classic packets CE instead of dropping them when they are "
                      "signalled (below overload); with false they are dropped. L packets "
                      "(ECT(1), CE) carry marks whatever this says.",
                      BooleanValue(true),
                      MakeBooleanAccessor(&DualQueueDisc::m_useEcn),
                      MakeBooleanChecker())
        .AddAttribute(style.gainPrefix + "Target",
                      "Queue delay target of " + pi2 + " (RFC 9332: 15 ms).",
                      TimeValue(MilliSeconds(15)),
                      MakeTimeAccessor(&DualQueueDisc::m_target),
                      MakeTimeChecker(Time(0)))
        .AddAttribute(style.gainPrefix + "Alpha",
                      "Integral gain of " + pi2 + " in Hz (RFC 9332 Appendix A: 0.1 * Tupdate "
                      "/ RTT_max^2, 0.15 for a 15 ms update and RTT_max 100 ms; Linux "
                      "sch_dualpi2: 0.16 for its 16 ms update).",
                      DoubleValue(style.alpha),
                      MakeDoubleAccessor(&DualQueueDisc::m_alpha),
                      MakeDoubleChecker<double>(0.0))
        .AddAttribute(style.gainPrefix + "Beta",
                      "Proportional gain of " + pi2 + " in Hz (RFC 9332 Appendix A: 0.3 / "
                      "RTT_max = 3.0 for RTT_max 100 ms; Linux: 3.2).",
                      DoubleValue(style.beta),
                      MakeDoubleAccessor(&DualQueueDisc::m_beta),
                      MakeDoubleChecker<double>(0.0))
        .AddAttribute("CouplingFactor",
                      "Coupling factor k of " + pi2 +
                          ": p_CL = k * p', p_C = p'^2, p_Cmax = min(1/k^2, 1).",
                      DoubleValue(2.0),
                      MakeDoubleAccessor(&DualQueueDisc::m_k),
                      MakeDoubleChecker<double>(0.0))
        .AddAttribute("MinTh",
                      "Start of the L queue's native marking ramp (RFC 9332: 800 us).",
                      TimeValue(MicroSeconds(800)),
                      MakeTimeAccessor(&DualQueueDisc::m_minTh),
                      MakeTimeChecker(Time(0)))
        .AddAttribute("Range",
                      "Width of the L queue's native marking ramp (RFC 9332: 400 us); marking "
                      "probability 1 from MinTh + Range on.",
                      TimeValue(MicroSeconds(400)),
                      MakeTimeAccessor(&DualQueueDisc::m_range),
                      MakeTimeChecker(Time(0)))
        .AddAttribute("ClassicWeight",
                      "Share of the bytes the weighted scheduler gives the C queue while both "
                      "queues are backlogged (Linux classic_protection: 10%).",
                      DoubleValue(0.1),
                      MakeDoubleAccessor(&DualQueueDisc::m_classicWeight),
                      MakeDoubleChecker<double>(0.0, 1.0))
        .AddAttribute("ExcludeBlockedTime",
                      "Wi-Fi: the native L marking (and the sojourns described to an agent) use "
                      "the sojourn up to the previous service instant (max(0, t_prevService - "
                      "t_enqueue)), excluding the last wait behind a stopped device queue. The "
                      "PI2 controller and the coupled marking keep the raw sojourn.",
                      BooleanValue(false),
                      MakeBooleanAccessor(&DualQueueDisc::m_excludeBlockedTime),
                      MakeBooleanChecker())
        .AddAttribute("LSojournLimit",
                      "The L queue's own overload rule, not part of RFC 9332 and off by default "
                      "(0): an L packet that waited longer than this is dropped at dequeue "
                      "before any other rule, whatever the classic queue does (in l4s-llm "
                      "whoever decides). DualPI2's overload rule drops L packets only while the "
                      "classic queue holds p' saturated; this one bounds the L tail by the L "
                      "queue's own delay (a capacity collapse with a short classic queue).",
                      TimeValue(Time(0)),
                      MakeTimeAccessor(&DualQueueDisc::m_lSojournLimit),
                      MakeTimeChecker(Time(0)))
        .AddTraceSource("SojournL",
                        "Sojourn time of each packet dequeued from the L queue",
                        MakeTraceSourceAccessor(&DualQueueDisc::m_sojournL),
                        "ns3::Time::TracedCallback")
        .AddTraceSource("SojournC",
                        "Sojourn time of each packet dequeued from the C queue",
                        MakeTraceSourceAccessor(&DualQueueDisc::m_sojournC),
                        "ns3::Time::TracedCallback");
}

bool
DualQueueDisc::ExceedsLSojournLimit(const Dequeued& d) const
{
    return d.fromL && m_lSojournLimit.IsStrictlyPositive() && d.sojourn > m_lSojournLimit;
}

bool
DualQueueDisc::Draw(UniformRandomVariable& uv, double p)
{
    if (p <= 0.0)
    {
        return false;
    }
    if (p >= 1.0)
    {
        return true;
    }
    return uv.GetValue(0.0, 1.0) < p;
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
    if (m_k <= 0.0)
    {
        NS_LOG_ERROR(name << ": CouplingFactor must be positive");
        return false;
    }
    return true;
}

DualPi2Controller::Params
DualQueueDisc::GetControllerParams(Time tupdate) const
{
    DualPi2Controller::Params params;
    params.target = m_target;
    params.tupdate = tupdate;
    params.alpha = m_alpha;
    params.beta = m_beta;
    params.k = m_k;
    return params;
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
DualQueueDisc::TakeNext(DequeuePass& pass, Dequeued& out)
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
    out.markDelay = m_excludeBlockedTime
                        ? std::max(Time(0), pass.prevService - out.item->GetTimeStamp())
                        : out.sojourn;
    m_scheduler.OnServed(out.fromL, hasL && hasC, out.item->GetSize());
    (out.fromL ? m_sojournL : m_sojournC)(out.sojourn);
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
    out.reserve(n);
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
