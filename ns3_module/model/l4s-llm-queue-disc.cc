/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "l4s-llm-queue-disc.h"

#include "agent-channel.h"

#include "ns3/abort.h"
#include "ns3/boolean.h"
#include "aqm-json.h"

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
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("L4sLlmQueueDisc");

NS_OBJECT_ENSURE_REGISTERED(L4sLlmQueueDisc);

static_assert(sizeof(L4sLlmQueueDisc::EpochRecordHeader) == 64);
static_assert(offsetof(L4sLlmQueueDisc::EpochRecordHeader, agentLatencyS) == 32);
static_assert(offsetof(L4sLlmQueueDisc::EpochRecordHeader, effectiveTimeNs) == 40);

namespace
{

constexpr char kRecordMagic[8] = {'A', 'Q', 'M', 'L', 'L', 'M', 'R', 'C'};
constexpr uint32_t kRecordVersion = 1;

const char* const kSeriesNames[] = {"l_sojourn_s", "c_sojourn_s", "queue_bytes", "arrival_bps",
                                    "departure_bps", "marks", "drops", "capacity_bps"};
const char* const kScalarNames[] = {"burst_allowance_s", "p_prime", "p_l", "p_c"};
const char* const kRewardNames[] = {"utilization", "l_delay_s", "c_delay_s", "loss"};
static_assert(sizeof(kSeriesNames) / sizeof(kSeriesNames[0]) == agent::kSeriesDefined);
static_assert(sizeof(kScalarNames) / sizeof(kScalarNames[0]) == agent::kScalarDefined);
static_assert(sizeof(kRewardNames) / sizeof(kRewardNames[0]) == agent::kRewardDefined);



const char*
ModeName(int mode)
{
    switch (mode)
    {
    case L4sLlmQueueDisc::MODE_AGENT:
        return "agent";
    case L4sLlmQueueDisc::MODE_TEACHER:
        return "teacher";
    case L4sLlmQueueDisc::MODE_RECORD:
        return "record";
    }
    return "?";
}

} // namespace

TypeId
L4sLlmQueueDisc::GetTypeId()
{
    static TypeId tid =
        TypeId("ns3::L4sLlmQueueDisc")
            .SetParent<QueueDisc>()
            .SetGroupName("AqmLlm")
            .AddConstructor<L4sLlmQueueDisc>()
            .AddAttribute("MaxSize",
                          "The shared buffer of both queues, in packets (\"1000p\") or bytes "
                          "(\"1500000B\"); a packet that does not fit is dropped at enqueue.",
                          QueueSizeValue(QueueSize("10000p")),
                          MakeQueueSizeAccessor(&QueueDisc::SetMaxSize, &QueueDisc::GetMaxSize),
                          MakeQueueSizeChecker())
            .AddAttribute("UseEcn",
                          "Mark ECT(0) C packets when a decision says mark (false: drop them). "
                          "L packets are always marked.",
                          BooleanValue(true),
                          MakeBooleanAccessor(&L4sLlmQueueDisc::m_useEcn),
                          MakeBooleanChecker())
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
            .AddAttribute("ClassicWeight",
                          "Share of the bytes the scheduler gives the C queue while both queues "
                          "are backlogged.",
                          DoubleValue(0.1),
                          MakeDoubleAccessor(&L4sLlmQueueDisc::m_classicWeight),
                          MakeDoubleChecker<double>(0.0, 1.0))
            .AddAttribute("ExcludeBlockedTime",
                          "Wi-Fi: the fallback's native L marking and the described packets' "
                          "sojourn leave out the time spent behind a stopped device queue "
                          "(see DualPi2QueueDisc).",
                          BooleanValue(false),
                          MakeBooleanAccessor(&L4sLlmQueueDisc::m_excludeBlockedTime),
                          MakeBooleanChecker())
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
            .AddAttribute("FallbackTarget",
                          "Target of the fallback PI2 controller.",
                          TimeValue(MilliSeconds(15)),
                          MakeTimeAccessor(&L4sLlmQueueDisc::m_target),
                          MakeTimeChecker(Time(0)))
            .AddAttribute("FallbackAlpha",
                          "Integral gain of the fallback PI2 controller, per epoch (Linux "
                          "sch_dualpi2's 0.16 for its 16 ms update).",
                          DoubleValue(0.16),
                          MakeDoubleAccessor(&L4sLlmQueueDisc::m_alpha),
                          MakeDoubleChecker<double>(0.0))
            .AddAttribute("FallbackBeta",
                          "Proportional gain of the fallback PI2 controller (Linux: 3.2).",
                          DoubleValue(3.2),
                          MakeDoubleAccessor(&L4sLlmQueueDisc::m_beta),
                          MakeDoubleChecker<double>(0.0))
            .AddAttribute("CouplingFactor",
                          "Coupling factor k of the fallback: p_CL = k p', p_C = p'^2.",
                          DoubleValue(2.0),
                          MakeDoubleAccessor(&L4sLlmQueueDisc::m_k),
                          MakeDoubleChecker<double>(0.0))
            .AddAttribute("MinTh",
                          "Start of the fallback's native L marking ramp.",
                          TimeValue(MicroSeconds(800)),
                          MakeTimeAccessor(&L4sLlmQueueDisc::m_minTh),
                          MakeTimeChecker(Time(0)))
            .AddAttribute("Range",
                          "Width of the fallback's native L marking ramp.",
                          TimeValue(MicroSeconds(400)),
                          MakeTimeAccessor(&L4sLlmQueueDisc::m_range),
                          MakeTimeChecker(Time(0)))
            .AddTraceSource("Fallbacks",
                            "Number of epochs that fell back to DualPI2 because of the agent",
                            MakeTraceSourceAccessor(&L4sLlmQueueDisc::m_fallbacks),
                            "ns3::TracedValueCallback::Uint64")
            .AddTraceSource("Decision",
                            "Each epoch: (epoch, actor: -2 fallback, -1 agent, >= 0 teacher "
                            "index; agent outcome)",
                            MakeTraceSourceAccessor(&L4sLlmQueueDisc::m_decisionTrace),
                            "ns3::L4sLlmQueueDisc::DecisionTracedCallback")
            .AddTraceSource("SojournL",
                            "Sojourn time of each packet dequeued from the L queue",
                            MakeTraceSourceAccessor(&L4sLlmQueueDisc::m_sojournL),
                            "ns3::Time::TracedCallback")
            .AddTraceSource("SojournC",
                            "Sojourn time of each packet dequeued from the C queue",
                            MakeTraceSourceAccessor(&L4sLlmQueueDisc::m_sojournC),
                            "ns3::Time::TracedCallback");
    return tid;
}

L4sLlmQueueDisc::L4sLlmQueueDisc()
    : QueueDisc(QueueDiscSizePolicy::MULTIPLE_QUEUES)
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
                  << " decision epochs used the DualPI2 fallback (timeouts "
                  << m_outcomes[OUTCOME_TIMEOUT] << ", invalid " << m_outcomes[OUTCOME_INVALID]
                  << ", agent gone " << m_outcomes[OUTCOME_PEER_GONE] << ", abandoned "
                  << m_outcomes[OUTCOME_ABANDONED] << ", no agent " << m_outcomes[OUTCOME_NO_AGENT]
                  << ")" << std::endl;
    }
    m_channel.reset(); // closes: the agent sees the end of the run
    if (m_record)
    {
        m_record->flush();
        m_record.reset();
    }
    m_teachers.clear();
    m_pending.clear();
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
    return outcome < OUTCOME_COUNT ? m_outcomes[outcome] : 0;
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
    std::vector<std::string> names;
    for (const auto& t : m_teachers)
    {
        names.push_back(t->GetName());
    }
    return names;
}

const char*
L4sLlmQueueDisc::OutcomeName(uint32_t outcome)
{
    switch (outcome)
    {
    case OUTCOME_NOT_CONSULTED:
        return "not_consulted";
    case OUTCOME_OK:
        return "ok";
    case OUTCOME_AGENT_FALLBACK:
        return "agent_requested_fallback";
    case OUTCOME_TIMEOUT:
        return "timeout";
    case OUTCOME_INVALID:
        return "invalid";
    case OUTCOME_PEER_GONE:
        return "peer_gone";
    case OUTCOME_NO_AGENT:
        return "no_agent";
    case OUTCOME_ABANDONED:
        return "abandoned";
    }
    return "?";
}

std::string
L4sLlmQueueDisc::GetReportJson() const
{
    std::ostringstream os;
    os << "{\"mode\": " << JsonString(ModeName(m_mode)) << ", \"actor\": ";
    if (m_agentActs)
    {
        os << "\"agent\"";
    }
    else if (m_actingTeacher >= 0 && m_actingTeacher < int32_t(m_teachers.size()))
    {
        os << JsonString("teacher:" + m_teachers[m_actingTeacher]->GetName());
    }
    else
    {
        os << "null";
    }
    os << ", \"epochs\": " << m_epoch << ", \"agent_epochs\": " << m_agentEpochs
       << ", \"teacher_epochs\": " << m_teacherEpochs << ", \"fallbacks\": " << m_fallbacks
       << ", \"agent_requested_fallbacks\": " << m_agentRequestedFallbacks
       << ", \"reproducible\": " << (IsReproducible() ? "true" : "false") << ", \"outcomes\": {";
    bool first = true;
    for (uint32_t i = 0; i < OUTCOME_COUNT; ++i)
    {
        if (m_outcomes[i] == 0)
        {
            continue;
        }
        os << (first ? "" : ", ") << JsonString(OutcomeName(i)) << ": " << m_outcomes[i];
        first = false;
    }
    os << "}, \"agent_latency_ms\": ";
    if (m_latencies.empty())
    {
        os << "null";
    }
    else
    {
        std::vector<double> v = m_latencies;
        std::sort(v.begin(), v.end());
        double sum = 0;
        for (double x : v)
        {
            sum += x;
        }
        auto q = [&](double f) {
            return v[std::min(v.size() - 1, size_t(std::ceil(f * v.size())) - (f > 0 ? 1 : 0))];
        };
        os << "{\"count\": " << v.size() << ", \"mean\": " << JsonNumber(sum / v.size() * 1e3)
           << ", \"p50\": " << JsonNumber(q(0.5) * 1e3) << ", \"p99\": " << JsonNumber(q(0.99) * 1e3)
           << ", \"max\": " << JsonNumber(v.back() * 1e3) << "}";
    }
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

Time
L4sLlmQueueDisc::HeadSojourn(std::size_t i) const
{
    if (GetNInternalQueues() <= i)
    {
        return Time(0);
    }
    Ptr<const QueueDiscItem> head = GetInternalQueue(i)->Peek();
    return head ? Simulator::Now() - head->GetTimeStamp() : Time(0);
}

Ptr<DualQueueFifo>
L4sLlmQueueDisc::Fifo(std::size_t i) const
{
    return StaticCast<DualQueueFifo>(GetInternalQueue(i));
}

bool
L4sLlmQueueDisc::CheckConfig()
{
    NS_LOG_FUNCTION(this);
    if (GetNQueueDiscClasses() > 0)
    {
        NS_LOG_ERROR("L4sLlmQueueDisc cannot have classes");
        return false;
    }
    if (GetNPacketFilters() > 0)
    {
        NS_LOG_ERROR("L4sLlmQueueDisc classifies by ECN itself and takes no packet filters");
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
    if (GetNInternalQueues() != 2 || !DynamicCast<DualQueueFifo>(GetInternalQueue(0)) ||
        !DynamicCast<DualQueueFifo>(GetInternalQueue(1)))
    {
        NS_LOG_ERROR("L4sLlmQueueDisc needs exactly two internal DualQueueFifo queues (L, C)");
        return false;
    }
    // As ns-3's own queue discs: log what is wrong and return false (QueueDisc refuses the
    // configuration), rather than aborting here.
    if (m_k <= 0.0)
    {
        NS_LOG_ERROR("L4sLlmQueueDisc: CouplingFactor must be positive");
        return false;
    }
    if (m_mode == MODE_RECORD && m_recordPath.empty())
    {
        NS_LOG_ERROR("L4sLlmQueueDisc: Mode=Record needs a RecordPath");
        return false;
    }
    std::string error;
    if ((m_mode == MODE_TEACHER || m_mode == MODE_RECORD) &&
        !AqmTeacher::Create(m_teacherName, &error))
    {
        NS_LOG_ERROR("L4sLlmQueueDisc: Teacher: " << error);
        return false;
    }
    if (m_mode == MODE_RECORD)
    {
        for (const auto& name : AqmTeacher::ParseList(m_teacherList))
        {
            if (!AqmTeacher::Create(name, &error))
            {
                NS_LOG_ERROR("L4sLlmQueueDisc: Teachers: " << error);
                return false;
            }
        }
    }
    return true;
}

void
L4sLlmQueueDisc::WarnOnce(AgentOutcome outcome, const std::string& message)
{
    NS_LOG_WARN(message);
    if (outcome < OUTCOME_COUNT && !m_warned[outcome])
    {
        m_warned[outcome] = true;
        std::cerr << "L4sLlmQueueDisc: " << message << std::endl;
    }
}

void
L4sLlmQueueDisc::InitializeParams()
{
    NS_LOG_FUNCTION(this);
    const Time now = Simulator::Now();
    DualPi2Controller::Params params;
    params.target = m_target;
    params.tupdate = m_interval;
    params.alpha = m_alpha;
    params.beta = m_beta;
    params.k = m_k;
    params.delaySource = DualPi2Controller::DelaySource::CLASSIC;
    params.maxProbBase = 1.0;
    m_fallback = DualPi2Controller(params);
    m_scheduler.Configure(dualq::DualQueueScheduler::Type::WEIGHTED, m_classicWeight, Time(0));
    m_scheduler.Reset();
    m_service.Reset(now);

    m_epoch = 0;
    for (auto& row : m_history)
    {
        row.fill(0.0);
    }
    m_capacity = double(m_linkRate.GetBitRate());
    m_history[agent::kSeriesCapacity].fill(m_capacity);
    m_burstAllowance = m_maxBurst.GetSeconds();
    m_prevDelayC = 0;
    m_ivIdle = GetNPackets() == 0;
    m_current = Decision();
    m_pending.clear();

    // Who acts, and which teachers run.
    m_agentActs = m_mode == MODE_AGENT ||
                  (m_mode == MODE_RECORD &&
                   (m_recordActor == RECORD_ACTOR_AGENT ||
                    (m_recordActor == RECORD_ACTOR_AUTO && !m_channelName.empty())));
    std::vector<std::string> names;
    if (m_mode == MODE_RECORD)
    {
        names = AqmTeacher::ParseList(m_teacherList);
    }
    m_teachers.clear();
    m_actingTeacher = -1;
    if (!m_agentActs)
    {
        auto it = std::find(names.begin(), names.end(), m_teacherName);
        if (it == names.end())
        {
            names.push_back(m_teacherName);
            it = names.end() - 1;
        }
        m_actingTeacher = int32_t(it - names.begin());
    }
    for (const auto& name : names)
    {
        std::string error;
        auto teacher = AqmTeacher::Create(name, &error);
        NS_ABORT_MSG_IF(!teacher, "L4sLlmQueueDisc: " << error);
        m_teachers.push_back(std::move(teacher));
    }
    m_teacherReplies.assign(m_teachers.size(), agent::Reply());

    // The agent.
    m_channel.reset();
    m_agentDead = false;
    m_firstCall = true;
    m_consecutiveTimeouts = 0;
    if (m_mode != MODE_TEACHER)
    {
        if (m_channelName.empty())
        {
            m_agentDead = true;
            m_deadOutcome = OUTCOME_NO_AGENT;
            if (m_agentActs)
            {
                WarnOnce(OUTCOME_NO_AGENT,
                         "no agent channel (ChannelName is empty): every decision epoch uses the "
                         "DualPI2 fallback, counted as fallbacks");
            }
        }
        else
        {
            AgentChannel::Options options;
            options.installSignalHandlers = false; // the attacher unlinks the name at once
            auto opened = AgentChannel::Attach(m_channelName, options);
            if (opened.channel)
            {
                m_channel = std::move(opened.channel);
            }
            else
            {
                m_agentDead = true;
                m_deadOutcome = OUTCOME_NO_AGENT;
                WarnOnce(OUTCOME_NO_AGENT,
                         opened.message +
                             "; every decision epoch uses the DualPI2 fallback, counted as "
                             "fallbacks");
            }
        }
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
    ++m_ivArrivedPackets;
    m_ivArrivedBytes += item->GetSize();
    if (GetCurrentSize() + item > GetMaxSize())
    {
        NS_LOG_LOGIC("buffer full, dropping " << item);
        ++m_ivDrops;
        DropBeforeEnqueue(item, FORCED_DROP);
        return false;
    }
    item->SetTimeStamp(Simulator::Now());
    const std::size_t queue = dualq::IsL4s(dualq::EcnOf(item)) ? L_QUEUE : C_QUEUE;
    const bool ok = Fifo(queue)->EnqueueWithId(item, ++m_nextId);
    NS_ASSERT_MSG(ok, "internal queue cannot be full below the shared limit");
    return ok;
}

bool
L4sLlmQueueDisc::Draw(double p)
{
    if (p <= 0.0)
    {
        return false;
    }
    if (p >= 1.0)
    {
        return true;
    }
    return m_uv->GetValue(0.0, 1.0) < p;
}

void
L4sLlmQueueDisc::DropDequeued(Ptr<QueueDiscItem> item, const char* reason)
{
    ++m_ivDrops;
    DropAfterDequeue(item, reason);
}

L4sLlmQueueDisc::Verdict
L4sLlmQueueDisc::Judge(uint64_t id,
                       bool isL,
                       uint8_t ecn,
                       Time sojourn,
                       Time markDelay,
                       std::size_t lPacketsBefore,
                       const char*& dropReason,
                       const char*& markReason)
{
    // DualPI2's two safety rules on the L queue (RFC 9332) hold whoever decides. The native
    // step/ramp on the L queue's own delay (Th_len = 1: a lone L packet is not natively marked):
    // a per-packet forward and the epoch's p_L can add marks to it, never remove it (at low
    // capacity the per-packet batch is most of an epoch's packets). The overload rule: when the
    // coupled probability saturates (p_CL >= 1, the L queue no longer held by marks), L packets
    // are dropped with p_C.
    const bool fallback = m_current.actor == ACTOR_FALLBACK;
    const double native = isL && lPacketsBefore > 1
                              ? DualPi2Controller::RampProb(markDelay, m_minTh, m_range)
                              : 0.0;
    if (isL && m_fallback.IsLSaturated() && Draw(m_fallback.GetProbC()))
    {
        dropReason = fallback ? FALLBACK_DROP : OVERLOAD_L4S_DROP;
        return Verdict::DROP;
    }
    if (fallback)
    {
        // RFC 9332 at dequeue with the fallback's p' (saturated: p_L = 1, every L packet marked).
        dropReason = FALLBACK_DROP;
        markReason = FALLBACK_MARK;
        if (isL)
        {
            return Draw(m_fallback.GetProbL(native)) ? Verdict::MARK : Verdict::FORWARD;
        }
        if (!Draw(m_fallback.GetProbC()))
        {
            return Verdict::FORWARD;
        }
        return (ecn == dualq::ECN_ECT0 && m_useEcn && !m_fallback.IsClassicOverloaded())
                   ? Verdict::MARK
                   : Verdict::DROP;
    }
    const bool byAgent = m_current.actor == ACTOR_AGENT;
    if (!m_current.actions.empty())
    {
        for (const auto& [u, action] : m_current.actions)
        {
            if (u != id)
            {
                continue;
            }
            dropReason = byAgent ? AGENT_DROP : TEACHER_DROP;
            markReason = byAgent ? AGENT_MARK : TEACHER_MARK;
            if (action == agent::kActionDrop)
            {
                return Verdict::DROP;
            }
            if (action == agent::kActionMark)
            {
                return Verdict::MARK;
            }
            markReason = byAgent ? AGENT_EPOCH_MARK : TEACHER_EPOCH_MARK;
            return Draw(native) ? Verdict::MARK : Verdict::FORWARD;
        }
    }
    dropReason = byAgent ? AGENT_EPOCH_DROP : TEACHER_EPOCH_DROP;
    markReason = byAgent ? AGENT_EPOCH_MARK : TEACHER_EPOCH_MARK;
    if (isL)
    {
        return Draw(std::max(native, m_current.pLMark)) ? Verdict::MARK : Verdict::FORWARD;
    }
    const double pSignal = m_current.pCDrop + m_current.pCMark;
    if (pSignal <= 0.0)
    {
        return Verdict::FORWARD;
    }
    const double u = pSignal >= 1.0 && m_current.pCDrop <= 0.0 ? 0.0 : m_uv->GetValue(0.0, 1.0);
    if (u < m_current.pCDrop)
    {
        return Verdict::DROP;
    }
    return u < pSignal ? Verdict::MARK : Verdict::FORWARD;
}

Ptr<QueueDiscItem>
L4sLlmQueueDisc::DoDequeue()
{
    NS_LOG_FUNCTION(this);
    const Time now = Simulator::Now();
    bool serviceKnown = false;
    Time prevService;
    Ptr<DualQueueFifo> lq = Fifo(L_QUEUE);
    Ptr<DualQueueFifo> cq = Fifo(C_QUEUE);

    while (!lq->IsEmpty() || !cq->IsEmpty())
    {
        const bool hasL = !lq->IsEmpty();
        const bool hasC = !cq->IsEmpty();
        const bool fromL =
            m_scheduler.PickL(hasL, hasC, HeadSojourn(L_QUEUE), HeadSojourn(C_QUEUE));
        Ptr<DualQueueFifo> q = fromL ? lq : cq;
        const std::size_t lPacketsBefore = lq->GetNPackets();
        if (!serviceKnown)
        {
            serviceKnown = true;
            prevService = m_service.OnDequeue(now, dualq::IsServiceInstant(*this, q->Peek()));
        }
        const uint64_t id = q->PeekId();
        Ptr<QueueDiscItem> item = q->Dequeue();
        NS_ASSERT(item);
        const Time sojourn = now - item->GetTimeStamp();
        const uint8_t ecn = dualq::EcnOf(item);
        m_scheduler.OnServed(fromL, hasL && hasC, item->GetSize());
        (fromL ? m_sojournL : m_sojournC)(sojourn);
        m_ivSojournSum[fromL ? 0 : 1] += sojourn.GetSeconds();
        ++m_ivSojournCount[fromL ? 0 : 1];
        const Time markDelay =
            m_excludeBlockedTime ? std::max(Time(0), prevService - item->GetTimeStamp()) : sojourn;

        const char* dropReason = FALLBACK_DROP;
        const char* markReason = FALLBACK_MARK;
        Verdict v =
            Judge(id, fromL, ecn, sojourn, markDelay, lPacketsBefore, dropReason, markReason);
        if (v == Verdict::MARK)
        {
            if (ecn == dualq::ECN_CE)
            {
                v = Verdict::FORWARD; // already carries the mark
            }
            else if ((fromL || (ecn == dualq::ECN_ECT0 && m_useEcn)) && Mark(item, markReason))
            {
                ++m_ivMarks;
            }
            else
            {
                v = Verdict::DROP; // a mark it cannot carry is a drop
            }
        }
        if (v == Verdict::DROP)
        {
            DropDequeued(item, dropReason);
            continue;
        }
        m_ivDepartedBytes += item->GetSize();
        if (lq->IsEmpty() && cq->IsEmpty())
        {
            m_ivIdle = true;
        }
        return item;
    }
    m_ivIdle = true;
    return nullptr;
}

// ---------------------------------------------------------------- epochs

void
L4sLlmQueueDisc::CloseInterval(Time now)
{
    // The interval is [previous epoch, now); the first one starts at initialisation.
    NS_LOG_FUNCTION(this << now);
    const double dt = m_interval.GetSeconds();
    const double departure = m_ivDepartedBytes * 8.0 / dt;
    const double arrival = m_ivArrivedBytes * 8.0 / dt;
    if (GetNPackets() == 0)
    {
        m_ivIdle = true;
    }
    if (!m_ivIdle && departure > 0)
    {
        m_capacity = departure; // backlogged throughout: the link ran at capacity
    }
    else
    {
        m_capacity = std::max(m_capacity, departure);
    }
    const double values[agent::kSeriesDefined] = {
        HeadSojourn(L_QUEUE).GetSeconds(),
        HeadSojourn(C_QUEUE).GetSeconds(),
        double(GetNBytes()),
        arrival,
        departure,
        double(m_ivMarks),
        double(m_ivDrops),
        m_capacity,
    };
    for (uint32_t s = 0; s < agent::kSeriesDefined; ++s)
    {
        auto& row = m_history[s];
        std::copy(row.begin() + 1, row.end(), row.begin());
        row[agent::kWindow - 1] = values[s];
    }
    m_request.rewards[agent::kRewardUtilization] =
        m_capacity > 0 ? std::min(1.0, departure / m_capacity) : 0.0;
    m_request.rewards[agent::kRewardLDelay] =
        m_ivSojournCount[0] ? m_ivSojournSum[0] / m_ivSojournCount[0] : 0.0;
    m_request.rewards[agent::kRewardCDelay] =
        m_ivSojournCount[1] ? m_ivSojournSum[1] / m_ivSojournCount[1] : 0.0;
    m_request.rewards[agent::kRewardLoss] =
        m_ivArrivedPackets ? std::min(1.0, double(m_ivDrops) / m_ivArrivedPackets)
                           : (m_ivDrops ? 1.0 : 0.0);

    m_ivArrivedBytes = m_ivArrivedPackets = m_ivDepartedBytes = 0;
    m_ivMarks = m_ivDrops = 0;
    m_ivSojournSum[0] = m_ivSojournSum[1] = 0;
    m_ivSojournCount[0] = m_ivSojournCount[1] = 0;
    m_ivIdle = GetNPackets() == 0;
}

void
L4sLlmQueueDisc::BuildRequest(Time now)
{
    double rewards[agent::kRewardDefined];
    std::copy(m_request.rewards, m_request.rewards + agent::kRewardDefined, rewards);
    std::memset(&m_request, 0, sizeof(m_request));
    agent::Request& r = m_request;
    r.header.epoch = m_epoch;
    r.header.sim_time_ns = now.GetNanoSeconds();
    r.series_count = agent::kSeriesDefined;
    r.window_len = agent::kWindow;
    for (uint32_t s = 0; s < agent::kSeriesDefined; ++s)
    {
        std::copy(m_history[s].begin(), m_history[s].end(), r.series[s]);
    }
    r.scalar_count = agent::kScalarDefined;
    r.scalars[agent::kScalarBurstAllowance] = m_burstAllowance;
    r.scalars[agent::kScalarPPrime] = m_fallback.GetProbBase();
    r.scalars[agent::kScalarPL] = m_fallback.GetProbL(
        DualPi2Controller::RampProb(HeadSojourn(L_QUEUE), m_minTh, m_range));
    r.scalars[agent::kScalarPC] = m_fallback.GetProbC();
    r.reward_count = agent::kRewardDefined;
    std::copy(rewards, rewards + agent::kRewardDefined, r.rewards);

    // The next K packets in the order the scheduler would send them.
    const auto& lItems = Fifo(L_QUEUE)->Items();
    const auto& cItems = Fifo(C_QUEUE)->Items();
    auto itL = lItems.begin();
    auto itC = cItems.begin();
    auto idL = Fifo(L_QUEUE)->Ids().begin();
    auto idC = Fifo(C_QUEUE)->Ids().begin();
    dualq::DualQueueScheduler scheduler = m_scheduler;
    bool stalled = false;
    if (m_excludeBlockedTime && (itL != lItems.end() || itC != cItems.end()))
    {
        stalled = !dualq::IsServiceInstant(*this, itL != lItems.end() ? *itL : *itC);
    }
    const Time lastService = m_service.GetLastService();
    uint32_t n = 0;
    while (n < m_batchSize && (itL != lItems.end() || itC != cItems.end()))
    {
        const bool hasL = itL != lItems.end();
        const bool hasC = itC != cItems.end();
        const Time sL = hasL ? now - (*itL)->GetTimeStamp() : Time(0);
        const Time sC = hasC ? now - (*itC)->GetTimeStamp() : Time(0);
        const bool fromL = scheduler.PickL(hasL, hasC, sL, sC);
        Ptr<QueueDiscItem> item = fromL ? *itL++ : *itC++;
        const uint64_t id = fromL ? *idL++ : *idC++;
        scheduler.OnServed(fromL, hasL && hasC, item->GetSize());
        agent::PacketDescriptor& d = r.packets[n++];
        Time sojourn = now - item->GetTimeStamp();
        if (stalled)
        {
            sojourn = std::max(Time(0), lastService - item->GetTimeStamp());
        }
        d.uid = id;
        d.sojourn_s = std::max(0.0, sojourn.GetSeconds());
        d.size_bytes = int32_t(std::min<uint32_t>(item->GetSize(), agent::kMaxPacketSize));
        d.flow_hash = item->Hash(0);
        d.traffic_class = fromL ? agent::kClassL : agent::kClassC;
        d.ecn = dualq::EcnOf(item);
    }
    r.packet_count = n;
}

L4sLlmQueueDisc::AgentOutcome
L4sLlmQueueDisc::ConsultAgent(agent::Reply& reply, double& latency)
{
    latency = 0;
    std::memset(&reply, 0, sizeof(reply));
    if (!m_channel || m_agentDead)
    {
        return m_deadOutcome;
    }
    const double timeout = m_firstCall
                               ? std::max(m_firstCallTimeout, m_agentTimeout).GetSeconds()
                               : m_agentTimeout.GetSeconds();
    m_firstCall = false;
    const uint64_t seqBefore = m_channel->LastRequestSeq();
    const auto t0 = std::chrono::steady_clock::now();
    const AgentChannel::Status s = m_channel->Call(m_request, reply, timeout);
    latency = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (m_channel->LastRequestSeq() != seqBefore)
    {
        m_request.header.seq = m_channel->LastRequestSeq(); // as the bridge carried it
    }
    const std::string epoch = "epoch " + std::to_string(m_epoch) + ": ";
    const std::string thisEpoch = m_agentActs ? "; this epoch uses the DualPI2 fallback"
                                              : "; the teacher acts (the agent runs in shadow)";
    const std::string restOfRun = m_agentActs
                                      ? "; the rest of the run uses the DualPI2 fallback"
                                      : "; the agent is no longer asked";
    switch (s)
    {
    case AgentChannel::Status::Ok:
        m_consecutiveTimeouts = 0;
        m_latencies.push_back(latency);
        return reply.status == agent::kReplyFallback ? OUTCOME_AGENT_FALLBACK : OUTCOME_OK;
    case AgentChannel::Status::Timeout:
    case AgentChannel::Status::Interrupted:
        WarnOnce(OUTCOME_TIMEOUT,
                 epoch + "agent timed out (" + m_channel->LastError() + ")" + thisEpoch);
        ++m_consecutiveTimeouts;
        if (m_maxConsecutiveTimeouts > 0 && m_consecutiveTimeouts >= m_maxConsecutiveTimeouts)
        {
            WarnOnce(OUTCOME_ABANDONED,
                     epoch + "agent abandoned after " + std::to_string(m_consecutiveTimeouts) +
                         " timeouts in a row" + restOfRun);
            m_agentDead = true;
            m_deadOutcome = OUTCOME_ABANDONED;
            m_channel->Close();
        }
        return OUTCOME_TIMEOUT;
    case AgentChannel::Status::PeerGone:
        WarnOnce(OUTCOME_PEER_GONE,
                 epoch + "agent gone (" + m_channel->LastError() + ")" + restOfRun);
        m_agentDead = true;
        m_deadOutcome = OUTCOME_PEER_GONE;
        return OUTCOME_PEER_GONE;
    case AgentChannel::Status::Invalid:
        break;
    }
    m_consecutiveTimeouts = 0;
    WarnOnce(OUTCOME_INVALID, epoch + m_channel->LastError() + thisEpoch);
    return OUTCOME_INVALID;
}

void
L4sLlmQueueDisc::Epoch()
{
    NS_LOG_FUNCTION(this);
    const Time now = Simulator::Now();
    CloseInterval(now);

    // The fallback controller follows the queue every epoch, whoever acts.
    const Time delayC = HeadSojourn(C_QUEUE);
    m_fallback.Update(delayC, HeadSojourn(L_QUEUE));
    const double target = m_target.GetSeconds();
    m_burstAllowance = std::max(0.0, m_burstAllowance - m_interval.GetSeconds());
    if (m_fallback.GetProbBase() == 0 && delayC.GetSeconds() < target / 2 &&
        m_prevDelayC < target / 2)
    {
        m_burstAllowance = m_maxBurst.GetSeconds();
    }
    m_prevDelayC = delayC.GetSeconds();

    BuildRequest(now);

    // The agent first (its request gets the bridge's seq), then the teachers on the same state.
    agent::Reply agentReply;
    double latency = 0;
    AgentOutcome outcome = OUTCOME_NOT_CONSULTED;
    if (m_mode != MODE_TEACHER)
    {
        outcome = ConsultAgent(agentReply, latency);
    }
    ++m_outcomes[outcome];
    for (std::size_t i = 0; i < m_teachers.size(); ++i)
    {
        m_teachers[i]->Decide(m_request, m_interval.GetSeconds(), m_teacherReplies[i]);
    }

    Decision d;
    d.epoch = m_epoch;
    const agent::Reply* applied = nullptr;
    bool fallback = false;
    bool explored = false;
    if (m_agentActs)
    {
        if (outcome == OUTCOME_OK)
        {
            d.actor = ACTOR_AGENT;
            applied = &agentReply;
            ++m_agentEpochs;
        }
        else if (outcome == OUTCOME_AGENT_FALLBACK)
        {
            ++m_agentRequestedFallbacks;
        }
        else
        {
            fallback = true;
            ++m_fallbacks;
        }
    }
    else if (m_actingTeacher >= 0)
    {
        d.actor = m_actingTeacher;
        applied = &m_teacherReplies[m_actingTeacher];
        ++m_teacherEpochs;
        if (m_epsilon > 0)
        {
            m_explored = *applied;
            const uint32_t n = std::min(m_explored.action_count, agent::kMaxPackets);
            for (uint32_t i = 0; i < n; ++i)
            {
                if (m_exploreRv->GetValue() < m_epsilon)
                {
                    m_explored.actions[i].action =
                        uint8_t(m_exploreRv->GetInteger(0, agent::kActionCount - 1));
                }
            }
            applied = &m_explored;
            explored = true;
        }
    }
    if (applied != nullptr)
    {
        const uint32_t n = std::min(applied->action_count, agent::kMaxPackets);
        d.actions.reserve(n);
        for (uint32_t i = 0; i < n; ++i)
        {
            d.actions.emplace_back(applied->actions[i].uid, applied->actions[i].action);
        }
        d.pLMark = applied->p_l_mark;
        d.pCDrop = applied->p_c_drop;
        d.pCMark = applied->p_c_mark;
    }
    const int32_t actor = d.actor;
    const Time effective = now + m_decisionDelay;
    Install(std::move(d));
    m_decisionTrace(m_epoch, actor, outcome);
    if (m_record)
    {
        const bool hasReply = agentReply.seq != 0 && agentReply.seq == m_request.header.seq;
        if (explored)
        {
            WriteRecord(actor, outcome, fallback, latency, &m_explored, effective, true);
        }
        else
        {
            WriteRecord(actor, outcome, fallback, latency, hasReply ? &agentReply : nullptr,
                        effective);
        }
    }
    ++m_epoch;
    m_epochEvent = Simulator::Schedule(m_interval, &L4sLlmQueueDisc::Epoch, this);
}

void
L4sLlmQueueDisc::Install(Decision d)
{
    if (m_decisionDelay.IsZero())
    {
        m_current = std::move(d);
        return;
    }
    m_pending.push_back(std::move(d));
    Simulator::Schedule(m_decisionDelay, &L4sLlmQueueDisc::InstallPending, this);
}

void
L4sLlmQueueDisc::InstallPending()
{
    if (m_pending.empty())
    {
        return;
    }
    m_current = std::move(m_pending.front());
    m_pending.pop_front();
}

// ---------------------------------------------------------------- record file

void
L4sLlmQueueDisc::OpenRecord()
{
    m_record = std::make_unique<std::ofstream>(m_recordPath, std::ios::binary | std::ios::trunc);
    NS_ABORT_MSG_IF(!m_record->good(),
                    "L4sLlmQueueDisc: cannot write the record file '" << m_recordPath << "'");
    const size_t teachers = m_teachers.size();
    const size_t headerSize = sizeof(EpochRecordHeader);
    const size_t requestOffset = headerSize;
    const size_t agentOffset = requestOffset + sizeof(agent::Request);
    const size_t teacherOffset = agentOffset + sizeof(agent::Reply);
    const size_t recordSize = teacherOffset + teachers * sizeof(agent::Reply);
    m_recordBuffer.assign(recordSize, 0);

    std::ostringstream js;
    char hash[32];
    std::snprintf(hash, sizeof(hash), "0x%016llx",
                  static_cast<unsigned long long>(agent::LayoutHash()));
    js << "{\"format\": \"aqm-llm-record\", \"version\": " << kRecordVersion
       << ", \"record_size\": " << recordSize << ", \"record_header_size\": " << headerSize
       << ", \"request_offset\": " << requestOffset << ", \"agent_reply_offset\": " << agentOffset
       << ", \"teacher_replies_offset\": " << teacherOffset
       << ", \"request_size\": " << sizeof(agent::Request)
       << ", \"reply_size\": " << sizeof(agent::Reply)
       << ", \"protocol_version\": " << agent::kProtocolVersion << ", \"layout_hash\": \"" << hash
       << "\", \"teachers\": [";
    for (size_t i = 0; i < teachers; ++i)
    {
        js << (i ? ", " : "") << JsonString(m_teachers[i]->GetName());
    }
    js << "], \"acting\": "
       << (m_agentActs ? std::string("\"agent\"")
                       : JsonString("teacher:" + m_teachers[m_actingTeacher]->GetName()))
       << ", \"acting_teacher_index\": " << m_actingTeacher << ", \"mode\": \"record\""
       << ", \"decision_interval_s\": " << JsonNumber(m_interval.GetSeconds())
       << ", \"decision_delay_s\": " << JsonNumber(m_decisionDelay.GetSeconds())
       << ", \"batch_size\": " << m_batchSize << ", \"window\": " << agent::kWindow
       << ", \"unit\": \""
       << (GetMaxSize().GetUnit() == QueueSizeUnit::PACKETS ? "packets" : "bytes")
       << "\", \"max_size\": " << GetMaxSize().GetValue()
       << ", \"record_header\": [[\"epoch\", \"<u8\", 0], [\"sim_time_ns\", \"<i8\", 8], "
          "[\"actor\", \"<i4\", 16], [\"agent_outcome\", \"<u4\", 20], "
          "[\"teacher_count\", \"<u4\", 24], [\"flags\", \"<u4\", 28], "
          "[\"agent_latency_s\", \"<f8\", 32], [\"effective_time_ns\", \"<i8\", 40], "
          "[\"reserved\", \"(2,)<u8\", 48]]"
       << ", \"flags\": {\"fallback\": 1, \"agent_reply\": 2}"
       << ", \"actor_codes\": {\"-2\": \"fallback\", \"-1\": \"agent\", \">=0\": \"teacher index\"}"
       << ", \"agent_outcomes\": [";
    for (uint32_t i = 0; i < OUTCOME_COUNT; ++i)
    {
        js << (i ? ", " : "") << JsonString(OutcomeName(i));
    }
    js << "], \"series\": [";
    for (uint32_t i = 0; i < agent::kSeriesDefined; ++i)
    {
        js << (i ? ", " : "") << JsonString(kSeriesNames[i]);
    }
    js << "], \"scalars\": [";
    for (uint32_t i = 0; i < agent::kScalarDefined; ++i)
    {
        js << (i ? ", " : "") << JsonString(kScalarNames[i]);
    }
    js << "], \"rewards\": [";
    for (uint32_t i = 0; i < agent::kRewardDefined; ++i)
    {
        js << (i ? ", " : "") << JsonString(kRewardNames[i]);
    }
    js << "], \"rewards_refer_to\": \"the interval that ends at the epoch (effect of the "
          "decisions in force during it)\"}";
    std::string json = js.str();
    const size_t fixed = sizeof(kRecordMagic) + 2 * sizeof(uint32_t);
    const size_t total = ((fixed + json.size() + 1 + 63) / 64) * 64;
    json.resize(total - fixed - 1, ' ');
    json += '\n';
    const uint32_t version = kRecordVersion;
    const uint32_t offset = uint32_t(total);
    m_record->write(kRecordMagic, sizeof(kRecordMagic));
    m_record->write(reinterpret_cast<const char*>(&version), sizeof(version));
    m_record->write(reinterpret_cast<const char*>(&offset), sizeof(offset));
    m_record->write(json.data(), std::streamsize(json.size()));
    NS_ABORT_MSG_IF(!m_record->good(),
                    "L4sLlmQueueDisc: cannot write the record file '" << m_recordPath << "'");
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
    std::fill(m_recordBuffer.begin(), m_recordBuffer.end(), 0);
    EpochRecordHeader h{};
    h.epoch = m_epoch;
    h.simTimeNs = m_request.header.sim_time_ns;
    h.actor = actor;
    h.agentOutcome = outcome;
    h.teacherCount = uint32_t(m_teachers.size());
    h.flags = (fallback ? 1U : 0U) | (agentReply && !explored ? 2U : 0U) | (explored ? 4U : 0U);
    h.agentLatencyS = latency;
    h.effectiveTimeNs = effective.GetNanoSeconds();
    char* p = m_recordBuffer.data();
    std::memcpy(p, &h, sizeof(h));
    p += sizeof(h);
    std::memcpy(p, &m_request, sizeof(m_request));
    p += sizeof(m_request);
    if (agentReply != nullptr)
    {
        std::memcpy(p, agentReply, sizeof(agent::Reply));
    }
    p += sizeof(agent::Reply);
    for (const auto& reply : m_teacherReplies)
    {
        std::memcpy(p, &reply, sizeof(reply));
        p += sizeof(reply);
    }
    m_record->write(m_recordBuffer.data(), std::streamsize(m_recordBuffer.size()));
    NS_ABORT_MSG_IF(!m_record->good(),
                    "L4sLlmQueueDisc: cannot write the record file '" << m_recordPath << "'");
}

} // namespace ns3
