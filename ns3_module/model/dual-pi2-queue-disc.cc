/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "dual-pi2-queue-disc.h"

#include "ns3/abort.h"
#include "ns3/boolean.h"
#include "ns3/double.h"
#include "ns3/enum.h"
#include "ns3/log.h"
#include "ns3/queue-item.h"
#include "ns3/random-variable-stream.h"
#include "ns3/simulator.h"
#include "ns3/uinteger.h"

#include <algorithm>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("DualPi2QueueDisc");

NS_OBJECT_ENSURE_REGISTERED(DualPi2QueueDisc);

TypeId
DualPi2QueueDisc::GetTypeId()
{
    static TypeId tid =
        AddDualQueueAttributes(TypeId("ns3::DualPi2QueueDisc")
                                   .SetParent<DualQueueDisc>()
                                   .SetGroupName("AqmLlm")
                                   .AddConstructor<DualPi2QueueDisc>(),
                               {"", "the PI2 controller", 0.15, 3.0})
            .AddAttribute("Tupdate",
                          "PI2 update interval. Default: RFC 9332 Appendix A, "
                          "min(target, RTT_max/3) = 15 ms for RTT_max 100 ms (Linux: 16 ms).",
                          TimeValue(MilliSeconds(15)),
                          MakeTimeAccessor(&DualPi2QueueDisc::m_tUpdate),
                          MakeTimeChecker(NanoSeconds(1)))
            .AddAttribute("BaseDelay",
                          "Delay that drives the PI2 controller: the Classic queue's "
                          "head-of-line sojourn (Classic, RFC 9332 A.1) or the larger of both "
                          "queues' (Max, Linux sch_dualpi2).",
                          EnumValue(BASE_DELAY_CLASSIC),
                          MakeEnumAccessor<BaseDelaySource>(&DualPi2QueueDisc::m_baseDelay),
                          MakeEnumChecker(BASE_DELAY_CLASSIC, "Classic", BASE_DELAY_MAX, "Max"))
            .AddAttribute("LMarking",
                          "Native AQM of the L queue on each packet's sojourn: Ramp (MinTh, "
                          "Range; RFC 9332), Step (StepThreshold; Linux) or None (p_L = p_CL).",
                          EnumValue(L_MARKING_RAMP),
                          MakeEnumAccessor<LMarking>(&DualPi2QueueDisc::m_lMarking),
                          MakeEnumChecker(L_MARKING_RAMP,
                                          "Ramp",
                                          L_MARKING_STEP,
                                          "Step",
                                          L_MARKING_NONE,
                                          "None"))
            .AddAttribute("StepThreshold",
                          "L queue step threshold (LMarking=Step): mark if sojourn > threshold.",
                          TimeValue(MilliSeconds(1)),
                          MakeTimeAccessor(&DualPi2QueueDisc::m_stepThreshold),
                          MakeTimeChecker(Time(0)))
            .AddAttribute("ThLen",
                          "Th_len of RFC 9332: no native L marking while the L queue holds at "
                          "most this many packets, counting the one being dequeued (1: a lone "
                          "packet is not marked; 0: off).",
                          UintegerValue(1),
                          MakeUintegerAccessor(&DualPi2QueueDisc::m_thLen),
                          MakeUintegerChecker<uint32_t>())
            .AddAttribute("DropOnOverload",
                          "When the L queue saturates (k p' >= 1), drop L packets with p_C like "
                          "Classic ones (true, RFC 9332 / Linux drop_on_overload) or only mark "
                          "them and cap p' at 1/k (false, Linux overflow).",
                          BooleanValue(true),
                          MakeBooleanAccessor(&DualPi2QueueDisc::m_dropOnOverload),
                          MakeBooleanChecker())
            .AddAttribute("Scheduler",
                          "Scheduler between the queues: Weighted (byte credit, C gets "
                          "ClassicWeight while both are backlogged) or TimeShifted (serve C when "
                          "its head waited TimeShift longer than the L head).",
                          EnumValue(SCHEDULER_WEIGHTED),
                          MakeEnumAccessor<SchedulerType>(&DualPi2QueueDisc::m_schedulerType),
                          MakeEnumChecker(SCHEDULER_WEIGHTED,
                                          "Weighted",
                                          SCHEDULER_TIME_SHIFTED,
                                          "TimeShifted"))
            .AddAttribute("TimeShift",
                          "Time shift of the TimeShifted scheduler.",
                          TimeValue(MilliSeconds(50)),
                          MakeTimeAccessor(&DualPi2QueueDisc::m_timeShift),
                          MakeTimeChecker(Time(0)))
            .AddAttribute("DeterministicMarking",
                          "Use RFC 9332's recur() (accumulate p, act each time it reaches 1) "
                          "instead of random draws.",
                          BooleanValue(false),
                          MakeBooleanAccessor(&DualPi2QueueDisc::m_deterministic),
                          MakeBooleanChecker())
            .AddTraceSource("ProbBase",
                            "Base probability p' of the PI2 controller",
                            MakeTraceSourceAccessor(&DualPi2QueueDisc::m_probBase),
                            "ns3::TracedValueCallback::Double")
            .AddTraceSource("ProbC",
                            "Classic drop/mark probability p_C = p'^2",
                            MakeTraceSourceAccessor(&DualPi2QueueDisc::m_probC),
                            "ns3::TracedValueCallback::Double")
            .AddTraceSource("ProbCL",
                            "Coupled L4S marking probability p_CL = min(k p', 1)",
                            MakeTraceSourceAccessor(&DualPi2QueueDisc::m_probCL),
                            "ns3::TracedValueCallback::Double")
            .AddTraceSource("ProbL",
                            "L marking probability p_L = max(p'_L, p_CL) applied to the last "
                            "dequeued L packet (1 while saturated)",
                            MakeTraceSourceAccessor(&DualPi2QueueDisc::m_probL),
                            "ns3::TracedValueCallback::Double")
            .AddTraceSource("LMarkingDelay",
                            "Delay the native L AQM used for each L packet (the sojourn, less "
                            "the blocked time with ExcludeBlockedTime)",
                            MakeTraceSourceAccessor(&DualPi2QueueDisc::m_lMarkingDelay),
                            "ns3::Time::TracedCallback");
    return tid;
}

DualPi2QueueDisc::DualPi2QueueDisc()
{
    NS_LOG_FUNCTION(this);
    m_uv = CreateObject<UniformRandomVariable>();
}

DualPi2QueueDisc::~DualPi2QueueDisc()
{
    NS_LOG_FUNCTION(this);
}

void
DualPi2QueueDisc::DoDispose()
{
    NS_LOG_FUNCTION(this);
    Simulator::Cancel(m_updateEvent);
    m_uv = nullptr;
    QueueDisc::DoDispose();
}

int64_t
DualPi2QueueDisc::AssignStreams(int64_t stream)
{
    NS_LOG_FUNCTION(this << stream);
    m_uv->SetStream(stream);
    return 1;
}

const DualPi2Controller&
DualPi2QueueDisc::GetController() const
{
    return m_controller;
}

Time
DualPi2QueueDisc::GetQueueDelayL() const
{
    return HeadSojourn(L_QUEUE);
}

Time
DualPi2QueueDisc::GetQueueDelayC() const
{
    return HeadSojourn(C_QUEUE);
}

bool
DualPi2QueueDisc::CheckConfig()
{
    NS_LOG_FUNCTION(this);
    if (!CheckDualQueues("DualPi2QueueDisc"))
    {
        return false;
    }
    return true;
}

void
DualPi2QueueDisc::InitializeParams()
{
    NS_LOG_FUNCTION(this);
    DualPi2Controller::Params params = GetControllerParams(m_tUpdate);
    params.delaySource = m_baseDelay == BASE_DELAY_MAX ? DualPi2Controller::DelaySource::MAX
                                                       : DualPi2Controller::DelaySource::CLASSIC;
    // Without drop on overload, keep p_CL <= 1 as Linux does (no windup above saturation).
    params.maxProbBase = m_dropOnOverload ? 1.0 : std::min(1.0, 1.0 / m_k);
    m_controller = DualPi2Controller(params);
    m_probBase = 0.0;
    m_probC = 0.0;
    m_probCL = 0.0;
    m_probL = 0.0;
    ResetDualQueue(m_schedulerType == SCHEDULER_TIME_SHIFTED
                       ? dualq::DualQueueScheduler::Type::TIME_SHIFTED
                       : dualq::DualQueueScheduler::Type::WEIGHTED,
                   m_classicWeight,
                   m_timeShift);
    m_countL = m_countLDrop = m_countC = 0.0;
    m_updateEvent =
        Simulator::Schedule(m_tUpdate, &DualPi2QueueDisc::UpdateProbability, this);
}

void
DualPi2QueueDisc::UpdateProbability()
{
    NS_LOG_FUNCTION(this);
    m_controller.Update(HeadSojourn(C_QUEUE), HeadSojourn(L_QUEUE));
    m_probBase = m_controller.GetProbBase();
    m_probC = m_controller.GetProbC();
    m_probCL = m_controller.GetProbCL();
    NS_LOG_DEBUG("p'=" << m_controller.GetProbBase() << " delay=" << m_controller.GetLastDelay());
    m_updateEvent =
        Simulator::Schedule(m_tUpdate, &DualPi2QueueDisc::UpdateProbability, this);
}

bool
DualPi2QueueDisc::DoEnqueue(Ptr<QueueDiscItem> item)
{
    NS_LOG_FUNCTION(this << item);
    return EnqueueClassified(item);
}

bool
DualPi2QueueDisc::Decide(double p, double& count)
{
    if (m_deterministic)
    {
        return DualPi2Controller::Recur(count, p);
    }
    return Draw(*m_uv, p);
}

Ptr<QueueDiscItem>
DualPi2QueueDisc::DoDequeue()
{
    NS_LOG_FUNCTION(this);
    using Rule = DualPi2Controller::PacketRule;
    auto draw = [this](double p, DualPi2Controller::DrawKind kind) {
        switch (kind)
        {
        case DualPi2Controller::DrawKind::L_MARK:
            return Decide(p, m_countL);
        case DualPi2Controller::DrawKind::L_OVERLOAD_DROP:
            return Decide(p, m_countLDrop);
        case DualPi2Controller::DrawKind::C_SIGNAL:
            break;
        }
        return Decide(p, m_countC);
    };
    DequeuePass pass{Simulator::Now()};
    Dequeued d;
    while (TakeNext(pass, d))
    {
        Ptr<QueueDiscItem> item = d.item;
        if (ExceedsLSojournLimit(d)) // LSojournLimit (off by default): before any other rule
        {
            DropAfterDequeue(item, L_SOJOURN_LIMIT_DROP);
            continue;
        }
        double nativeP = 0.0;
        if (d.fromL)
        {
            const bool saturated = m_controller.IsLSaturated();
            // The native AQM sees the delay up to the last service instant (ExcludeBlockedTime,
            // see the class documentation); saturated, it does not act.
            m_lMarkingDelay(saturated ? d.sojourn : d.markDelay);
            if (!saturated && d.lPacketsBefore > m_thLen)
            {
                switch (m_lMarking)
                {
                case L_MARKING_RAMP:
                    nativeP = DualPi2Controller::RampProb(d.markDelay, m_minTh, m_range);
                    break;
                case L_MARKING_STEP:
                    nativeP = DualPi2Controller::StepProb(d.markDelay, m_stepThreshold);
                    break;
                case L_MARKING_NONE:
                    break;
                }
            }
        }
        double probL = m_probL;
        const Rule rule = m_controller.DecidePacket(d.fromL,
                                                    d.ecn == dualq::ECN_ECT0,
                                                    m_useEcn,
                                                    nativeP,
                                                    m_dropOnOverload,
                                                    draw,
                                                    &probL);
        if (d.fromL)
        {
            m_probL = probL;
        }
        switch (rule)
        {
        case Rule::FORWARD:
            break;
        case Rule::NATIVE_MARK:
        case Rule::COUPLED_MARK:
        case Rule::OVERLOAD_L_MARK:
            if (d.ecn != dualq::ECN_CE)
            {
                Mark(item,
                     rule == Rule::NATIVE_MARK    ? L4S_NATIVE_MARK
                     : rule == Rule::COUPLED_MARK ? L4S_COUPLED_MARK
                                                  : OVERLOAD_L4S_MARK);
            }
            break;
        case Rule::OVERLOAD_L_DROP:
            DropAfterDequeue(item, OVERLOAD_L4S_DROP);
            continue;
        case Rule::CLASSIC_DROP:
            DropAfterDequeue(item, UNFORCED_CLASSIC_DROP);
            continue;
        case Rule::OVERLOAD_CLASSIC_DROP:
            DropAfterDequeue(item, OVERLOAD_CLASSIC_DROP);
            continue;
        case Rule::CLASSIC_MARK:
            if (!Mark(item, UNFORCED_CLASSIC_MARK))
            {
                DropAfterDequeue(item, UNFORCED_CLASSIC_DROP);
                continue;
            }
            break;
        }
        return item;
    }
    return nullptr;
}

} // namespace ns3
