/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "l4s-llm-queue-disc.h"

#include "aqm-json.h"

#include "ns3/abort.h"
#include "ns3/boolean.h"

#include "ns3/double.h"
#include "ns3/enum.h"
#include "ns3/log.h"
#include "ns3/packet.h"
#include "ns3/queue-item.h"
#include "ns3/random-variable-stream.h"
#include "ns3/simulator.h"
#include "ns3/string.h"
#include "ns3/uinteger.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <sstream>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("L4sLlmQueueDisc");

NS_OBJECT_ENSURE_REGISTERED(L4sLlmQueueDisc);

TypeId
L4sLlmQueueDisc::GetTypeId()
{
    static TypeId tid =
        AddDualQueueAttributes(TypeId("ns3::L4sLlmQueueDisc")
                                   .SetParent<DualQueueDisc>()
                                   .SetGroupName("AqmLlm")
                                   .AddConstructor<L4sLlmQueueDisc>(),
                               {"Fallback", "the DualPI2 fallback's PI2 controller", 0.16, 3.2})
            .AddAttribute("DecisionInterval",
                          "Length of a decision epoch (one request to the agent per epoch).",
                          TimeValue(MilliSeconds(16)),
                          MakeTimeAccessor(&L4sLlmQueueDisc::m_interval),
                          MakeTimeChecker(MicroSeconds(100)))
            .AddAttribute("BatchSize",
                          "K: head-of-queue packets described in each request (at most 32).",
                          UintegerValue(16),
                          MakeUintegerAccessor(&L4sLlmQueueDisc::m_batchSize),
                          MakeUintegerChecker<uint32_t>(0, agent::kMaxPackets))
            .AddAttribute("DecisionDelay",
                          "Simulated time between an epoch's request and the moment its decision "
                          "takes effect (the previous decision stays in force until then).",
                          TimeValue(Time(0)),
                          MakeTimeAccessor(&L4sLlmQueueDisc::m_decisionDelay),
                          MakeTimeChecker(Time(0)))
            .AddAttribute("ExplorationEpsilon",
                          "Exploration for experience collection: when a teacher acts, each of "
                          "its per-packet actions is replaced, with this probability, by an action "
                          "drawn uniformly from forward/drop/mark (own random stream). The actions "
                          "applied are logged in record mode (record flag bit 2).",
                          DoubleValue(0.0),
                          MakeDoubleAccessor(&L4sLlmQueueDisc::m_epsilon),
                          MakeDoubleChecker<double>(0.0, 1.0))
            .AddAttribute("ChannelName",
                          "Name of the agent's shared-memory channel (\"/aqm-llm-...\", created "
                          "by the agent). Empty in Agent mode: every epoch uses the fallback.",
                          StringValue(""),
                          MakeStringAccessor(&L4sLlmQueueDisc::m_channelName),
                          MakeStringChecker())
            .AddAttribute("AgentTimeout",
                          "Wall-clock time the agent has to answer one request; a late epoch "
                          "falls back to DualPI2. Default 5 s: far above the p99 decision "
                          "latency measured for SmolLM2 on 2 CPU cores (15 ms with ONNX Runtime; "
                          "283 ms in eager PyTorch before; docs/bench-inference.md).",
                          TimeValue(Seconds(5)),
                          MakeTimeAccessor(&L4sLlmQueueDisc::m_agentTimeout),
                          MakeTimeChecker(MilliSeconds(1)))
            .AddAttribute("FirstCallTimeout",
                          "Timeout of the first request (the agent's first forward pass warms "
                          "up); the larger of this and AgentTimeout applies.",
                          TimeValue(Seconds(30)),
                          MakeTimeAccessor(&L4sLlmQueueDisc::m_firstCallTimeout),
                          MakeTimeChecker(Time(0)))
            .AddAttribute("MaxConsecutiveTimeouts",
                          "Abandon the agent (close the channel, fallback for the rest of the "
                          "run, no more waiting) after this many timeouts in a row; 0: never.",
                          UintegerValue(10),
                          MakeUintegerAccessor(&L4sLlmQueueDisc::m_maxConsecutiveTimeouts),
                          MakeUintegerChecker<uint32_t>())
            .AddAttribute("Mode",
                          "Agent: the agent decides. Teacher: the Teacher decides, no agent. "
                          "Record: RecordActor decides, every teacher runs in shadow, one record "
                          "per epoch goes to RecordPath.",
                          EnumValue(MODE_AGENT),
                          MakeEnumAccessor<Mode>(&L4sLlmQueueDisc::m_mode),
                          MakeEnumChecker(MODE_AGENT,
                                          "Agent",
                                          MODE_TEACHER,
                                          "Teacher",
                                          MODE_RECORD,
                                          "Record"))
            .AddAttribute("Teacher",
                          "The teacher that acts in Teacher mode (and in Record mode when a "
                          "teacher acts): dualpi2, pie-step, codel-like, or NAME@SCALE.",
                          StringValue("dualpi2"),
                          MakeStringAccessor(&L4sLlmQueueDisc::m_teacherName),
                          MakeStringChecker())
            .AddAttribute("Teachers",
                          "Teachers that run in shadow in Record mode, comma-separated (the "
                          "acting teacher is added if missing).",
                          StringValue("dualpi2,pie-step,codel-like,dualpi2@0.5,pie-step@0.5,"
                                      "codel-like@0.5,dualpi2@2,pie-step@2,codel-like@2"),
                          MakeStringAccessor(&L4sLlmQueueDisc::m_teacherList),
                          MakeStringChecker())
            .AddAttribute("RecordActor",
                          "Who acts in Record mode: Auto (the agent if ChannelName is set, "
                          "else Teacher), Agent or Teacher.",
                          EnumValue(RECORD_ACTOR_AUTO),
                          MakeEnumAccessor<RecordActor>(&L4sLlmQueueDisc::m_recordActor),
                          MakeEnumChecker(RECORD_ACTOR_AUTO,
                                          "Auto",
                                          RECORD_ACTOR_AGENT,
                                          "Agent",
                                          RECORD_ACTOR_TEACHER,
                                          "Teacher"))
            .AddAttribute("RecordPath",
                          "File the records go to in Record mode (required there).",
                          StringValue(""),
                          MakeStringAccessor(&L4sLlmQueueDisc::m_recordPath),
                          MakeStringChecker())
            .AddAttribute("LinkRate",
                          "Initial capacity estimate (0: none until the queue stays backlogged "
                          "for an interval).",
                          DataRateValue(DataRate(0)),
                          MakeDataRateAccessor(&L4sLlmQueueDisc::m_linkRate),
                          MakeDataRateChecker())
            .AddAttribute("MaxBurst",
                          "Burst allowance restored after a quiet period (RFC 8033), reported "
                          "to the agent.",
                          TimeValue(MilliSeconds(150)),
                          MakeTimeAccessor(&L4sLlmQueueDisc::m_maxBurst),
                          MakeTimeChecker(Time(0)))
            .AddAttribute("OverloadRule",
                          "What DualPI2's overload rule on the L queue follows while an agent or a "
                          "teacher decides. Controller: the fallback controller's p' (L packets "
                          "dropped with p'^2 while k p' >= 1, as DualPI2). Decision: the "
                          "probabilities in force (dropped with the decision's classic signal "
                          "p_C drop + p_C mark while its p_L >= 1), so that a decision that holds "
                          "the classic signal below DualPI2's does not also drop L packets on "
                          "DualPI2's saturated p'. The fallback always uses its own p'.",
                          EnumValue(OVERLOAD_CONTROLLER),
                          MakeEnumAccessor<OverloadRule>(&L4sLlmQueueDisc::m_overloadRule),
                          MakeEnumChecker(OVERLOAD_CONTROLLER,
                                          "Controller",
                                          OVERLOAD_DECISION,
                                          "Decision"))
            .AddAttribute("AgentLDrop",
                          "What the agent's per-packet drop of an L packet does. Drop: it drops "
                          "the packet. Mark: it CE-marks it, as DualPI2 signals to L4S senders "
                          "(RFC 9332: L packets are marked; only the overload rule and "
                          "LSojournLimit drop them). Teachers' actions are not affected.",
                          EnumValue(AGENT_L_DROP_DROP),
                          MakeEnumAccessor<AgentLDropRule>(&L4sLlmQueueDisc::m_agentLDrop),
                          MakeEnumChecker(AGENT_L_DROP_DROP, "Drop", AGENT_L_DROP_MARK, "Mark"))
            .AddAttribute("AgentForward",
                          "What the agent's per-packet forward of a head-of-queue packet does. "
                          "Forward: the packet is forwarded (only the L queue's native ramp can "
                          "still mark it). Draw: the packet takes the epoch decision's draw, as a "
                          "packet past the batch does, so that the per-packet drops and marks add "
                          "to the epoch probabilities instead of replacing them (an agent that "
                          "forwards every packet then draws as with BatchSize 0). Teachers' "
                          "actions are not affected.",
                          EnumValue(AGENT_FORWARD_FORWARD),
                          MakeEnumAccessor<AgentForwardRule>(&L4sLlmQueueDisc::m_agentForward),
                          MakeEnumChecker(AGENT_FORWARD_FORWARD,
                                          "Forward",
                                          AGENT_FORWARD_DRAW,
                                          "Draw"))
            .AddAttribute("AgentDrop",
                          "What the agent's per-packet drop of a head-of-queue packet does. Drop: "
                          "it drops the packet. Draw: the packet takes the epoch decision's draw, "
                          "as a packet past the batch does, so the per-packet head drops no more "
                          "than the epoch probabilities it decides (its argmax over three actions "
                          "drops every batch packet where it rates a drop likeliest). AgentLDrop "
                          "Mark still turns an L packet's drop into a mark. Teachers' actions are "
                          "not affected.",
                          EnumValue(AGENT_DROP_DROP),
                          MakeEnumAccessor<AgentDropRule>(&L4sLlmQueueDisc::m_agentDrop),
                          MakeEnumChecker(AGENT_DROP_DROP, "Drop", AGENT_DROP_DRAW, "Draw"))
            .AddAttribute("ClassicDecider",
                          "Who decides the classic queue's packets under the agent's decisions. "
                          "Agent: the agent, by its per-packet actions on the head-of-queue batch "
                          "and its epoch classic signal (p_C drop + p_C mark). Controller: "
                          "DualPI2's PI2 controller that the queue disc runs every epoch (RFC 9332 "
                          "at dequeue: signal with p_C = p'^2, a drop where the packet cannot "
                          "carry a mark or p_C >= p_Cmax), so the agent decides the L queue only; "
                          "its classic actions are ignored, and OverloadRule Decision drops "
                          "overloaded L packets with the controller's p_C. Teachers' decisions "
                          "and the fallback are not affected.",
                          EnumValue(CLASSIC_BY_AGENT),
                          MakeEnumAccessor<ClassicDeciderRule>(&L4sLlmQueueDisc::m_classicDecider),
                          MakeEnumChecker(CLASSIC_BY_AGENT,
                                          "Agent",
                                          CLASSIC_BY_CONTROLLER,
                                          "Controller"))
            .AddTraceSource("Fallbacks",
                            "Number of epochs that fell back to DualPI2 because of the agent",
                            MakeTraceSourceAccessor(&L4sLlmQueueDisc::m_fallbacks),
                            "ns3::TracedValueCallback::Uint64")
            .AddTraceSource("Decision",
                            "Each epoch: (epoch, actor: -2 fallback, -1 agent, >= 0 teacher "
                            "index; agent outcome)",
                            MakeTraceSourceAccessor(&L4sLlmQueueDisc::m_decisionTrace),
                            "ns3::L4sLlmQueueDisc::DecisionTracedCallback");
    return tid;
}

L4sLlmQueueDisc::L4sLlmQueueDisc()
{
    NS_LOG_FUNCTION(this);
    m_uv = CreateObject<UniformRandomVariable>();
    m_exploreRv = CreateObject<UniformRandomVariable>();
    std::memset(&m_request, 0, sizeof(m_request));
}

L4sLlmQueueDisc::~L4sLlmQueueDisc()
{
    NS_LOG_FUNCTION(this);
}

void
L4sLlmQueueDisc::DoDispose()
{
    NS_LOG_FUNCTION(this);
    Simulator::Cancel(m_epochEvent);
    if (m_fallbacks > 0)
    {
        std::cerr << "L4sLlmQueueDisc: " << m_fallbacks << " of " << m_epoch
                  << " decision epochs used the DualPI2 fallback (" << m_agent.GetFailureSummary()
                  << ")" << std::endl;
    }
    m_agent.Close(); // the agent sees the end of the run
    m_record.Close();
    m_teachers.Clear();
    m_decisions.Reset();
    m_uv = nullptr;
    m_exploreRv = nullptr;
    QueueDisc::DoDispose();
}

int64_t
L4sLlmQueueDisc::AssignStreams(int64_t stream)
{
    NS_LOG_FUNCTION(this << stream);
    m_uv->SetStream(stream);
    m_exploreRv->SetStream(stream + 1);
    return 2;
}

uint64_t
L4sLlmQueueDisc::GetFallbackCount() const
{
    return m_fallbacks;
}

uint64_t
L4sLlmQueueDisc::GetEpochCount() const
{
    return m_epoch;
}

uint64_t
L4sLlmQueueDisc::GetAgentEpochCount() const
{
    return m_agentEpochs;
}

uint64_t
L4sLlmQueueDisc::GetTeacherEpochCount() const
{
    return m_teacherEpochs;
}

uint64_t
L4sLlmQueueDisc::GetOutcomeCount(AgentOutcome outcome) const
{
    return m_agent.GetCount(outcome);
}

bool
L4sLlmQueueDisc::IsReproducible() const
{
    return m_fallbacks == 0;
}

const DualPi2Controller&
L4sLlmQueueDisc::GetFallbackController() const
{
    return m_fallback;
}

std::vector<std::string>
L4sLlmQueueDisc::GetTeacherNames() const
{
    return m_teachers.GetNames();
}

const char*
L4sLlmQueueDisc::OutcomeName(uint32_t outcome)
{
    return AgentClient::OutcomeName(outcome);
}

std::string
L4sLlmQueueDisc::GetReportJson() const
{
    const char* const modes[] = {"agent", "teacher", "record"}; // by Mode
    std::ostringstream os;
    os << "{\"mode\": " << JsonString(modes[m_mode]) << ", \"actor\": "
       << (m_agentActs                         ? std::string("\"agent\"")
           : m_teachers.GetActingIndex() >= 0 ? JsonString(m_teachers.GetActingLabel())
                                               : std::string("null"))
       << ", \"epochs\": " << m_epoch << ", \"agent_epochs\": " << m_agentEpochs
       << ", \"teacher_epochs\": " << m_teacherEpochs << ", \"fallbacks\": " << m_fallbacks
       << ", \"agent_requested_fallbacks\": " << m_agentRequestedFallbacks
       << ", \"reproducible\": " << (IsReproducible() ? "true" : "false")
       << ", \"outcomes\": " << m_agent.GetCountsJson()
       << ", \"agent_latency_ms\": " << m_agent.GetLatencyJson();
    os << ", \"decision_interval_ms\": " << JsonNumber(m_interval.GetSeconds() * 1e3)
       << ", \"decision_delay_ms\": " << JsonNumber(m_decisionDelay.GetSeconds() * 1e3)
       << ", \"agent_timeout_s\": " << JsonNumber(m_agentTimeout.GetSeconds())
       << ", \"batch_size\": " << m_batchSize;
    if (m_mode == MODE_RECORD)
    {
        os << ", \"record_path\": " << JsonString(m_recordPath);
    }
    os << "}";
    return os.str();
}

bool
L4sLlmQueueDisc::CheckConfig()
{
    NS_LOG_FUNCTION(this);
    if (!CheckDualQueues("L4sLlmQueueDisc"))
    {
        return false;
    }
    // As ns-3's own queue discs: log what is wrong and return false (QueueDisc refuses the
    // configuration), rather than aborting here.
    if (m_mode == MODE_RECORD && m_recordPath.empty())
    {
        NS_LOG_ERROR("L4sLlmQueueDisc: Mode=Record needs a RecordPath");
        return false;
    }
    std::string error;
    if (!TeacherSet::Check(m_mode == MODE_AGENT ? std::string() : m_teacherName,
                           m_mode == MODE_RECORD ? AqmTeacher::ParseList(m_teacherList)
                                                 : std::vector<std::string>(),
                           &error))
    {
        NS_LOG_ERROR("L4sLlmQueueDisc: " << error);
        return false;
    }
    return true;
}

void
L4sLlmQueueDisc::InitializeParams()
{
    NS_LOG_FUNCTION(this);
    DualPi2Controller::Params fallback = GetControllerParams(m_interval);
    fallback.delaySource = DualPi2Controller::DelaySource::CLASSIC; // p' from the C delay alone
    fallback.maxProbBase = 1.0;                                     // overload drops L packets
    m_fallback = DualPi2Controller(fallback);
    ResetDualQueue(dualq::DualQueueScheduler::Type::WEIGHTED, m_classicWeight, Time(0));

    m_epoch = 0;
    m_measure.Reset(double(m_linkRate.GetBitRate()), m_maxBurst, GetNPackets() == 0);
    m_decisions.Reset();

    // Who acts, and which teachers run.
    m_agentActs = m_mode == MODE_AGENT ||
                  (m_mode == MODE_RECORD &&
                   (m_recordActor == RECORD_ACTOR_AGENT ||
                    (m_recordActor == RECORD_ACTOR_AUTO && !m_channelName.empty())));
    m_teachers.Configure(m_mode == MODE_RECORD ? AqmTeacher::ParseList(m_teacherList)
                                               : std::vector<std::string>(),
                         m_agentActs ? std::string() : m_teacherName);

    // The agent.
    if (m_mode != MODE_TEACHER)
    {
        AgentClient::Options options;
        options.timeout = m_agentTimeout;
        options.firstCallTimeout = m_firstCallTimeout;
        options.maxConsecutiveTimeouts = m_maxConsecutiveTimeouts;
        options.agentActs = m_agentActs;
        m_agent.Attach(m_channelName, options);
    }
    if (m_mode == MODE_RECORD)
    {
        OpenRecord();
    }
    m_epochEvent = Simulator::Schedule(m_interval, &L4sLlmQueueDisc::Epoch, this);
}

// ---------------------------------------------------------------- enqueue / dequeue

bool
L4sLlmQueueDisc::DoEnqueue(Ptr<QueueDiscItem> item)
{
    NS_LOG_FUNCTION(this << item);
    m_measure.OnArrival(item->GetSize());
    if (!EnqueueClassified(item))
    {
        m_measure.OnDrop(); // forced
        return false;
    }
    return true;
}

L4sLlmQueueDisc::Verdict
L4sLlmQueueDisc::Judge(const Dequeued& d, const char*& dropReason, const char*& markReason)
{
    // DualPI2's two safety rules on the L queue (RFC 9332) hold whoever decides. The native
    // step/ramp on the L queue's own delay (Th_len = 1: a lone L packet is not natively marked):
    // a per-packet forward and the epoch's p_L can add marks to it, never remove it (at low
    // capacity the per-packet batch is most of an epoch's packets). The overload rule: when the
    // coupled probability saturates (p_CL >= 1, the L queue no longer held by marks), L packets
    // are dropped with p_C -- the fallback controller's or the decision's (OverloadRule).
    // LSojournLimit (off by default) drops an L packet that waited longer, whoever decides.
    // AgentLDrop Mark turns the agent's per-packet drop of an L packet into a mark; AgentForward
    // Draw gives a packet the agent forwards the epoch draw of a packet past the batch, AgentDrop
    // Draw one it drops. ClassicDecider Controller judges a classic packet under the agent's
    // decision as the fallback does (RFC 9332 with the controller's p').
    if (ExceedsLSojournLimit(d))
    {
        dropReason = L_SOJOURN_LIMIT_DROP; // no draw: the random stream stays as without it
        return Verdict::DROP;
    }
    const bool isL = d.fromL;
    const double native = isL && d.lPacketsBefore > 1
                              ? DualPi2Controller::RampProb(d.markDelay, m_minTh, m_range)
                              : 0.0;
    auto draw = [this](double p, DualPi2Controller::DrawKind) { return Draw(*m_uv, p); };
    const EpochDecision& current = m_decisions.GetCurrent();
    const bool byAgent = current.actor == ACTOR_AGENT;
    const bool fallback = current.actor == ACTOR_FALLBACK;
    if (fallback || (!isL && ControllerDecidesClassic(current)))
    {
        // RFC 9332 at dequeue with the controller's p'.
        dropReason = fallback ? FALLBACK_DROP : CONTROLLER_CLASSIC_DROP;
        markReason = fallback ? FALLBACK_MARK : CONTROLLER_CLASSIC_MARK;
        const auto rule =
            m_fallback.DecidePacket(isL, d.ecn == dualq::ECN_ECT0, m_useEcn, native, true, draw);
        return DualPi2Controller::IsDrop(rule)   ? Verdict::DROP
               : DualPi2Controller::IsMark(rule) ? Verdict::MARK
                                                 : Verdict::FORWARD;
    }
    if (isL && DropsOverloadedL(current))
    {
        dropReason = OVERLOAD_L4S_DROP;
        return Verdict::DROP;
    }
    if (const auto action = current.FindAction(d.id))
    {
        dropReason = byAgent ? AGENT_DROP : TEACHER_DROP;
        markReason = byAgent ? AGENT_MARK : TEACHER_MARK;
        if (*action == agent::kActionDrop)
        {
            if (isL && byAgent && m_agentLDrop == AGENT_L_DROP_MARK)
            {
                markReason = AGENT_L_DROP_AS_MARK;
                return Verdict::MARK;
            }
            if (!(byAgent && m_agentDrop == AGENT_DROP_DRAW))
            {
                return Verdict::DROP;
            }
            // AgentDrop Draw: the dropped packet falls through to the epoch draw below.
        }
        else if (*action == agent::kActionMark)
        {
            return Verdict::MARK;
        }
        else if (!(byAgent && m_agentForward == AGENT_FORWARD_DRAW))
        {
            markReason = byAgent ? AGENT_EPOCH_MARK : TEACHER_EPOCH_MARK;
            return Draw(*m_uv, native) ? Verdict::MARK : Verdict::FORWARD;
        }
        // AgentForward Draw: the forwarded packet falls through to the epoch draw below.
    }
    dropReason = byAgent ? AGENT_EPOCH_DROP : TEACHER_EPOCH_DROP;
    markReason = byAgent ? AGENT_EPOCH_MARK : TEACHER_EPOCH_MARK;
    if (isL)
    {
        return Draw(*m_uv, std::max(native, current.pLMark)) ? Verdict::MARK : Verdict::FORWARD;
    }
    const double pSignal = current.pCDrop + current.pCMark;
    if (pSignal <= 0.0)
    {
        return Verdict::FORWARD;
    }
    const double u = pSignal >= 1.0 && current.pCDrop <= 0.0 ? 0.0 : m_uv->GetValue(0.0, 1.0);
    if (u < current.pCDrop)
    {
        return Verdict::DROP;
    }
    return u < pSignal ? Verdict::MARK : Verdict::FORWARD;
}

bool
L4sLlmQueueDisc::DropsOverloadedL(const EpochDecision& current)
{
    if (m_overloadRule == OVERLOAD_CONTROLLER)
    {
        return m_fallback.DropsOverloadedL(
            [this](double p, DualPi2Controller::DrawKind) { return Draw(*m_uv, p); });
    }
    // The decision's classic signal: the controller's p_C where it decides the classic queue.
    const double pC = ControllerDecidesClassic(current) ? m_fallback.GetProbC()
                                                        : current.pCDrop + current.pCMark;
    return current.pLMark >= 1.0 && Draw(*m_uv, std::min(pC, 1.0));
}

bool
L4sLlmQueueDisc::ControllerDecidesClassic(const EpochDecision& current) const
{
    return current.actor == ACTOR_AGENT && m_classicDecider == CLASSIC_BY_CONTROLLER;
}

Ptr<QueueDiscItem>
L4sLlmQueueDisc::DoDequeue()
{
    NS_LOG_FUNCTION(this);
    DequeuePass pass{Simulator::Now()};
    Dequeued d;
    while (TakeNext(pass, d))
    {
        Ptr<QueueDiscItem> item = d.item;
        m_measure.OnSojourn(d.fromL, d.sojourn);
        const char* dropReason = FALLBACK_DROP;
        const char* markReason = FALLBACK_MARK;
        Verdict v = Judge(d, dropReason, markReason);
        if (v == Verdict::MARK)
        {
            if (d.ecn == dualq::ECN_CE)
            {
                v = Verdict::FORWARD; // already carries the mark
            }
            else if ((d.fromL || (d.ecn == dualq::ECN_ECT0 && m_useEcn)) &&
                     Mark(item, markReason))
            {
                m_measure.OnMark();
            }
            else
            {
                v = Verdict::DROP; // a mark it cannot carry is a drop
            }
        }
        if (v == Verdict::DROP)
        {
            m_measure.OnDrop();
            DropAfterDequeue(item, dropReason);
            continue;
        }
        m_measure.OnDeparture(item->GetSize());
        if (Fifo(L_QUEUE)->IsEmpty() && Fifo(C_QUEUE)->IsEmpty())
        {
            m_measure.OnIdle();
        }
        return item;
    }
    m_measure.OnIdle();
    return nullptr;
}

// ---------------------------------------------------------------- epochs

void
L4sLlmQueueDisc::BuildRequest(Time now)
{
    m_measure.Fill(m_request,
                   m_epoch,
                   now,
                   m_fallback.GetProbBase(),
                   m_fallback.GetProbL(
                       DualPi2Controller::RampProb(HeadSojourn(L_QUEUE), m_minTh, m_range)),
                   m_fallback.GetProbC());
    // The next K packets in the order the scheduler would send them. Behind a stopped device
    // (ExcludeBlockedTime) their sojourn counts only up to the latest service instant.
    const auto queued = PeekInSendOrder(m_batchSize, now);
    const bool stalled =
        m_excludeBlockedTime && !queued.empty() &&
        !dualq::IsServiceInstant(*this, Fifo(Fifo(L_QUEUE)->IsEmpty() ? C_QUEUE : L_QUEUE)->Peek());
    const Time lastService = GetLastServiceInstant();
    for (std::size_t n = 0; n < queued.size(); ++n)
    {
        const Ptr<QueueDiscItem>& item = queued[n].item;
        const Time sojourn = stalled ? std::max(Time(0), lastService - item->GetTimeStamp())
                                     : now - item->GetTimeStamp();
        agent::PacketDescriptor& d = m_request.packets[n];
        d.uid = queued[n].id;
        d.sojourn_s = std::max(0.0, sojourn.GetSeconds());
        d.size_bytes = int32_t(std::min<uint32_t>(item->GetSize(), agent::kMaxPacketSize));
        d.flow_hash = item->Hash(0);
        d.traffic_class = queued[n].fromL ? agent::kClassL : agent::kClassC;
        d.ecn = dualq::EcnOf(item);
    }
    m_request.packet_count = uint32_t(queued.size());
}

void
L4sLlmQueueDisc::Epoch()
{
    NS_LOG_FUNCTION(this);
    const Time now = Simulator::Now();
    m_measure.CloseInterval(m_interval,
                            HeadSojourn(L_QUEUE),
                            HeadSojourn(C_QUEUE),
                            GetNBytes(),
                            GetNPackets() == 0);

    // The fallback controller follows the queue every epoch, whoever acts.
    const Time delayC = HeadSojourn(C_QUEUE);
    m_fallback.Update(delayC, HeadSojourn(L_QUEUE));
    m_measure.UpdateBurstAllowance(m_interval, m_fallback.GetProbBase(), delayC, m_target,
                                   m_maxBurst);
    BuildRequest(now);

    // The agent first (its request gets the channel's seq), then the teachers on the same state.
    agent::Reply agentReply;
    double latency = 0;
    AgentOutcome outcome = OUTCOME_NOT_CONSULTED;
    if (m_mode != MODE_TEACHER)
    {
        outcome = m_agent.Call(m_request, agentReply, latency);
    }
    m_agent.Count(outcome);
    m_teachers.DecideAll(m_request, m_interval.GetSeconds());

    bool fallback = false;
    const agent::Reply* explored = nullptr;
    EpochDecision d = Decide(outcome, agentReply, fallback, explored);
    const int32_t actor = d.actor;
    const Time effective = now + m_decisionDelay;
    m_decisions.Install(std::move(d), m_decisionDelay);
    m_decisionTrace(m_epoch, actor, outcome);
    if (m_record.IsOpen())
    {
        const bool hasReply = agentReply.seq != 0 && agentReply.seq == m_request.header.seq;
        WriteRecord(actor, outcome, fallback, latency,
                    explored ? explored : (hasReply ? &agentReply : nullptr), effective,
                    explored != nullptr);
    }
    ++m_epoch;
    m_epochEvent = Simulator::Schedule(m_interval, &L4sLlmQueueDisc::Epoch, this);
}

EpochDecision
L4sLlmQueueDisc::Decide(AgentOutcome outcome,
                        const agent::Reply& agentReply,
                        bool& fallback,
                        const agent::Reply*& explored)
{
    if (!m_agentActs && m_teachers.GetActingIndex() >= 0)
    {
        ++m_teacherEpochs;
        bool randomised = false;
        const agent::Reply& reply = m_teachers.ActingReply(m_epsilon, m_exploreRv, randomised);
        explored = randomised ? &reply : nullptr;
        return EpochDecision::FromReply(m_teachers.GetActingIndex(), m_epoch, reply);
    }
    if (m_agentActs && outcome == OUTCOME_OK)
    {
        ++m_agentEpochs;
        return EpochDecision::FromReply(ACTOR_AGENT, m_epoch, agentReply);
    }
    if (m_agentActs && outcome == OUTCOME_AGENT_FALLBACK)
    {
        ++m_agentRequestedFallbacks;
    }
    else if (m_agentActs)
    {
        fallback = true;
        ++m_fallbacks;
    }
    EpochDecision d;
    d.epoch = m_epoch;
    return d;
}

// ---------------------------------------------------------------- record file

void
L4sLlmQueueDisc::OpenRecord()
{
    EpochRecordWriter::RunInfo info;
    info.teachers = m_teachers.GetNames();
    info.acting = m_agentActs ? std::string("agent") : m_teachers.GetActingLabel();
    info.actingTeacherIndex = m_teachers.GetActingIndex();
    info.decisionIntervalS = m_interval.GetSeconds();
    info.decisionDelayS = m_decisionDelay.GetSeconds();
    info.batchSize = m_batchSize;
    info.packetUnit = GetMaxSize().GetUnit() == QueueSizeUnit::PACKETS;
    info.maxSize = GetMaxSize().GetValue();
    for (uint32_t i = 0; i < OUTCOME_COUNT; ++i)
    {
        info.outcomeNames.emplace_back(OutcomeName(i));
    }
    m_record.Open(m_recordPath, info);
}

void
L4sLlmQueueDisc::WriteRecord(int32_t actor,
                             AgentOutcome outcome,
                             bool fallback,
                             double latency,
                             const agent::Reply* agentReply,
                             Time effective,
                             bool explored)
{
    EpochRecordHeader h{};
    h.epoch = m_epoch;
    h.simTimeNs = m_request.header.sim_time_ns;
    h.actor = actor;
    h.agentOutcome = outcome;
    h.teacherCount = uint32_t(m_teachers.GetSize());
    h.flags = (fallback ? 1U : 0U) | (agentReply && !explored ? 2U : 0U) | (explored ? 4U : 0U);
    h.agentLatencyS = latency;
    h.effectiveTimeNs = effective.GetNanoSeconds();
    m_record.Write(h, m_request, agentReply, m_teachers.GetReplies());
}

} // namespace ns3
