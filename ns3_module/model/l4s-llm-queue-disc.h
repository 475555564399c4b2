/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef L4S_LLM_QUEUE_DISC_H
#define L4S_LLM_QUEUE_DISC_H

#include "agent-client.h"
#include "agent-messages.h"
#include "decision-schedule.h"
#include "dual-pi2-controller.h"
#include "dual-queue-disc.h"
#include "epoch-record-writer.h"
#include "epoch-request-builder.h"
#include "teacher-set.h"

#include "ns3/data-rate.h"
#include "ns3/event-id.h"
#include "ns3/nstime.h"
#include "ns3/queue-disc.h"
#include "ns3/traced-callback.h"
#include "ns3/traced-value.h"

#include <array>
#include <memory>
#include <string>
#include <vector>

namespace ns3
{

class UniformRandomVariable;

/**
 * \ingroup aqm-llm
 * \brief The LLM-driven dual-queue AQM of aqm-llm: an L/C dual queue whose drop and mark
 * decisions come, once per decision epoch, from an agent over the shared-memory channel (AgentChannel).
 *
 * Queues: as DualPi2QueueDisc, ECT(1) and CE go to the L queue, Not-ECT and ECT(0) to the C
 * queue; one shared buffer (MaxSize, packets or bytes; a packet that does not fit is dropped
 * at enqueue, FORCED_DROP); a weighted scheduler gives C ClassicWeight of the bytes while both
 * are backlogged.
 *
 * Epochs: every DecisionInterval (16 ms) the queue disc closes an interval and writes one
 * agent::Request (agent-messages.h):
 * - series (W = 16 intervals, oldest first) and rewards of the interval just closed (the effect
 *   of the previous decision), as EpochRequestBuilder describes them; LinkRate seeds the
 *   capacity estimate;
 * - scalars: the burst allowance (RFC 8033 rule on the fallback's p' and the C delay, MaxBurst),
 *   the fallback's p', p_L = max(ramp(L head), p_CL) and p_C = p'^2 (the fallback controller is
 *   updated every epoch whether it acts or not);
 * - descriptors of up to BatchSize (K) head-of-queue packets, in the order the scheduler would
 *   send them if nothing else arrived: uid (an id this queue disc gives each packet at enqueue,
 *   1, 2, ...: ns-3 packet uids are shared by copies and fragments, e.g. by the TCP segments cut
 *   from one send-buffer entry, so they cannot name a packet), class, size, sojourn so far (with
 *   ExcludeBlockedTime, measured only up to the latest service instant while the device is
 *   stopped), ECN codepoint, flow hash;
 *
 * Decisions and how they apply at dequeue: a decision is a Reply: a per-packet action for each
 * described packet, matched by that id (forward unchanged, drop, CE-mark; a mark on a Not-ECT
 * packet, or on an ECT(0) one with UseEcn false, is a drop; a mark on a CE packet leaves it as
 * it is and is not counted), and epoch probabilities for the packets it does not cover (and,
 * with AgentForward Draw, for those the agent forwards): an L
 * packet is marked with p_l_mark; a C packet is dropped with p_c_drop, else marked with p_c_mark
 * (a drop if it cannot carry a mark). Draws come from one seeded stream (AssignStreams). A
 * decision takes effect DecisionDelay of simulated time after its epoch (0: at once) and stays in
 * force until the next one takes effect; the same delay applies to every actor (agent, teacher,
 * fallback), so decisions take effect in epoch order. Before the first one, the fallback acts.
 *
 * Who decides (Mode):
 * - Agent: the agent, over the channel named by ChannelName (attached at initialisation; the
 *   agent creates it). Lockstep: the simulation waits for the reply (deterministic runs).
 * - Teacher: the teacher named by Teacher (AqmTeacher: dualpi2, pie-step, codel-like, NAME@S);
 *   no agent needed (ChannelName is ignored).
 * - Record: RecordActor acts (Auto: the agent if ChannelName is set, else Teacher); every
 *   teacher of Teachers runs in shadow on the same requests (and the agent, if attached, also
 *   when a teacher acts), and one record per epoch goes to RecordPath (format below).
 *
 * Fallback (the agent acting): the queue disc's own DualPi2Controller decides an epoch in the
 * manner of DualPi2QueueDisc (per packet at dequeue: native L ramp MinTh/Range on the packet's
 * sojourn, coupled p_CL, C with p_C, overload drops; FALLBACK_* reasons) when
 * - the agent misses AgentTimeout (default 5 s: far above the measured p99 decision latency of
 *   the CPU agent, 15 ms with ONNX Runtime on the project's 2-core machine; FirstCallTimeout,
 *   default 30 s, covers the first call's warm-up);
 *   the late reply is discarded; after MaxConsecutiveTimeouts consecutive timeouts (default 10;
 *   0: never) the agent is abandoned: the channel is closed and the rest of the run uses the
 *   fallback without waiting;
 * - the reply is invalid, or the agent rejected the request;
 * - the agent is gone (killed, crashed, closed the channel): detected at once (pidfd watchdog),
 *   and the rest of the run uses the fallback without calling it again;
 * - no agent: Mode=Agent with an empty ChannelName, or the channel could not be attached; a
 *   one-line warning on stderr says so and every epoch is a fallback.
 * Each such epoch counts in Fallbacks (GetFallbackCount(), trace source "Fallbacks"); a run with
 * any fallback is not reproducible (its decisions depended on timing or on a missing agent). A
 * reply with status kReplyFallback (the agent asks for the fallback) is honoured and counted
 * apart (agent-requested), not as a fallback. Agent failures never abort the simulation; the
 * first of each kind is reported on stderr.
 *
 * Record file (Mode=Record, RecordPath): one record per epoch with the request exactly as the
 * channel carried it (seq 0 when no agent was consulted), the agent's reply (zeros if not
 * consulted or no valid reply; agent_outcome says) and the reply of each teacher, in the format
 * of EpochRecordWriter (docs/record-format.md). numpy: np.fromfile(path, dtype, offset=H) with
 * a structured dtype built from the channel's REQUEST_DTYPE and REPLY_DTYPE.
 *
 * The parts: DualQueueDisc (the queues and the scheduler), EpochRequestBuilder (measurements
 * and the request), AgentClient (the agent call, timeouts, abandonment), AqmTeacher (the
 * teachers), EpochRecordWriter (the record file); this class runs the epochs and judges each
 * dequeued packet by the decision in force.
 */
class L4sLlmQueueDisc : public DualQueueDisc
{
  public:
    /// \return the object TypeId
    static TypeId GetTypeId();

    L4sLlmQueueDisc();
    ~L4sLlmQueueDisc() override;

    /// Who decides.
    enum Mode
    {
        MODE_AGENT,   //!< the agent (fallback on failure)
        MODE_TEACHER, //!< one teacher, no agent
        MODE_RECORD,  //!< one acts, every teacher in shadow, all logged to RecordPath
    };

    /// Who acts in Record mode.
    enum RecordActor
    {
        RECORD_ACTOR_AUTO,    //!< the agent if ChannelName is set, else Teacher
        RECORD_ACTOR_AGENT,   //!< the agent (fallback on failure)
        RECORD_ACTOR_TEACHER, //!< Teacher
    };

    /// Which probabilities DualPI2's overload rule on the L queue follows under a decision.
    enum OverloadRule
    {
        OVERLOAD_CONTROLLER, //!< the fallback controller's p' (k p' >= 1; drop with p'^2)
        OVERLOAD_DECISION,   //!< the decision in force (p_L >= 1; drop with its classic signal)
    };

    /// What the agent's per-packet drop of an L packet does (AgentLDrop).
    enum AgentLDropRule
    {
        AGENT_L_DROP_DROP, //!< it drops the packet
        AGENT_L_DROP_MARK, //!< it CE-marks the packet (L packets dropped only by the overload rules)
    };

    /// What the agent's per-packet drop of a head-of-queue packet does (AgentDrop).
    enum AgentDropRule
    {
        AGENT_DROP_DROP, //!< it drops the packet
        AGENT_DROP_DRAW, //!< it takes the epoch decision's draw, as a packet past the batch
    };

    /// What the agent's per-packet forward of a head-of-queue packet does (AgentForward).
    enum AgentForwardRule
    {
        AGENT_FORWARD_FORWARD, //!< it is forwarded (the L queue's native ramp can still mark it)
        AGENT_FORWARD_DRAW,    //!< it takes the epoch decision's draw, as a packet past the batch
    };

    /// Who decides the classic queue's packets under the agent's decisions (ClassicDecider).
    enum ClassicDeciderRule
    {
        CLASSIC_BY_AGENT,      //!< the agent: its per-packet actions and epoch classic signal
        CLASSIC_BY_CONTROLLER, //!< DualPI2's controller (RFC 9332 at dequeue with its p')
    };

    /// EpochRecordHeader::actor and the Decision trace: who decided (>= 0: teacher index).
    using ActorCode = EpochDecision::ActorCode;
    static constexpr ActorCode ACTOR_FALLBACK = EpochDecision::ACTOR_FALLBACK; //!< the fallback
    static constexpr ActorCode ACTOR_AGENT = EpochDecision::ACTOR_AGENT;       //!< the agent

    /// What became of the agent in an epoch (AgentClient::Outcome: OUTCOME_OK, ...).
    using AgentOutcome = AgentClient::Outcome;
    static constexpr AgentOutcome OUTCOME_NOT_CONSULTED = AgentClient::OUTCOME_NOT_CONSULTED; //!< AgentClient::OUTCOME_NOT_CONSULTED
    static constexpr AgentOutcome OUTCOME_OK = AgentClient::OUTCOME_OK; //!< AgentClient::OUTCOME_OK
    static constexpr AgentOutcome OUTCOME_AGENT_FALLBACK = AgentClient::OUTCOME_AGENT_FALLBACK; //!< AgentClient::OUTCOME_AGENT_FALLBACK
    static constexpr AgentOutcome OUTCOME_TIMEOUT = AgentClient::OUTCOME_TIMEOUT; //!< AgentClient::OUTCOME_TIMEOUT
    static constexpr AgentOutcome OUTCOME_INVALID = AgentClient::OUTCOME_INVALID; //!< AgentClient::OUTCOME_INVALID
    static constexpr AgentOutcome OUTCOME_PEER_GONE = AgentClient::OUTCOME_PEER_GONE; //!< AgentClient::OUTCOME_PEER_GONE
    static constexpr AgentOutcome OUTCOME_NO_AGENT = AgentClient::OUTCOME_NO_AGENT; //!< AgentClient::OUTCOME_NO_AGENT
    static constexpr AgentOutcome OUTCOME_ABANDONED = AgentClient::OUTCOME_ABANDONED; //!< AgentClient::OUTCOME_ABANDONED
    static constexpr AgentOutcome OUTCOME_COUNT = AgentClient::OUTCOME_COUNT; //!< AgentClient::OUTCOME_COUNT

    /// Fixed 64-byte header of each record of the record file.
    using EpochRecordHeader = EpochRecordWriter::Header;

    /**
     * \brief TracedCallback signature of the Decision trace.
     * \param epoch the epoch index
     * \param actor ActorCode or teacher index
     * \param outcome AgentOutcome
     */
    typedef void (*DecisionTracedCallback)(uint64_t epoch, int32_t actor, uint32_t outcome);

    // Reasons for drops and marks (QueueDisc::Stats by reason)
    static constexpr const char* AGENT_DROP = "Agent drop"; //!< per-packet agent drop (or mark of a packet that cannot carry one)
    static constexpr const char* AGENT_MARK = "Agent mark"; //!< per-packet agent mark
    /// per-packet agent drop of an L packet, marked instead (AgentLDrop Mark)
    static constexpr const char* AGENT_L_DROP_AS_MARK = "Agent L drop as mark";
    static constexpr const char* AGENT_EPOCH_DROP = "Agent epoch drop"; //!< agent epoch probability
    static constexpr const char* AGENT_EPOCH_MARK = "Agent epoch mark"; //!< agent epoch probability
    static constexpr const char* TEACHER_DROP = "Teacher drop"; //!< per-packet teacher drop
    static constexpr const char* TEACHER_MARK = "Teacher mark"; //!< per-packet teacher mark
    static constexpr const char* TEACHER_EPOCH_DROP = "Teacher epoch drop"; //!< teacher epoch probability
    static constexpr const char* TEACHER_EPOCH_MARK = "Teacher epoch mark"; //!< teacher epoch probability
    static constexpr const char* FALLBACK_DROP = "Fallback drop"; //!< DualPI2 fallback drop
    /// L packet dropped under DualPI2's overload rule (p_CL >= 1: drop with p_C), whoever acts
    static constexpr const char* OVERLOAD_L4S_DROP = "Overload L4S drop";
    static constexpr const char* FALLBACK_MARK = "Fallback mark"; //!< DualPI2 fallback mark
    /// classic packet dropped by DualPI2's controller under the agent's decision (ClassicDecider)
    static constexpr const char* CONTROLLER_CLASSIC_DROP = "Controller classic drop";
    /// classic packet marked by DualPI2's controller under the agent's decision (ClassicDecider)
    static constexpr const char* CONTROLLER_CLASSIC_MARK = "Controller classic mark";

    /**
     * \brief Use fixed random variable streams.
     * \param stream first stream index to use
     * \return the number of stream indices assigned (2: decisions, exploration)
     */
    int64_t AssignStreams(int64_t stream);

    /// \return epochs that fell back because of the agent (see the class documentation)
    uint64_t GetFallbackCount() const;
    /// \return decision epochs so far
    uint64_t GetEpochCount() const;
    /// \return epochs decided by the agent
    uint64_t GetAgentEpochCount() const;
    /// \return epochs decided by a teacher
    uint64_t GetTeacherEpochCount() const;
    /// \return epochs whose agent outcome was \p outcome
    uint64_t GetOutcomeCount(AgentOutcome outcome) const;
    /// \return whether no fallback fired
    bool IsReproducible() const;
    /// \return a JSON object with the counts above, the mode and the agent's latency (ms)
    std::string GetReportJson() const;
    /// \return the fallback's PI2 controller
    const DualPi2Controller& GetFallbackController() const;
    /// \return the names of the teachers that run (acting one included), in record order
    std::vector<std::string> GetTeacherNames() const;
    /// \return AgentOutcome as a word ("timeout")
    static const char* OutcomeName(uint32_t outcome);

  protected:
    void DoDispose() override;

  private:
    bool DoEnqueue(Ptr<QueueDiscItem> item) override;
    Ptr<QueueDiscItem> DoDequeue() override;
    bool CheckConfig() override;
    void InitializeParams() override;

    /// What a dequeued packet gets.
    enum class Verdict
    {
        FORWARD,
        MARK,
        DROP,
    };

    /// One decision epoch (periodic).
    void Epoch();
    /// Fill m_request for the epoch (the measurements, then the head-of-queue packets).
    void BuildRequest(Time now);
    /**
     * \brief The decision of the actor of this epoch.
     * \param outcome the agent's outcome
     * \param agentReply the agent's reply
     * \param fallback set if the epoch falls back because of the agent
     * \param explored set to the acting teacher's reply after exploration (null: none ran)
     * \return the decision (actor ACTOR_FALLBACK: the fallback decides)
     */
    EpochDecision Decide(AgentOutcome outcome,
                         const agent::Reply& agentReply,
                         bool& fallback,
                         const agent::Reply*& explored);
    /// Append one record (Mode=Record).
    void WriteRecord(int32_t actor, AgentOutcome outcome, bool fallback, double latency,
                     const agent::Reply* agentReply, Time effective, bool explored = false);
    /// Open RecordPath and write the file header.
    void OpenRecord();
    /**
     * \brief The verdict of the decision in force on a dequeued packet.
     * \param d the packet
     * \param dropReason set to the reason to count a drop under
     * \param markReason set to the reason to count a mark under
     * \return the verdict
     */
    Verdict Judge(const Dequeued& d, const char*& dropReason, const char*& markReason);
    /**
     * \brief DualPI2's overload rule for an L packet under the decision in force (OverloadRule).
     * \param current the decision in force (an agent's or a teacher's)
     * \return whether the L packet is dropped
     */
    bool DropsOverloadedL(const EpochDecision& current);
    /**
     * \brief Whether the controller, not the decision, judges the classic queue (ClassicDecider).
     * \param current the decision in force
     * \return true under the agent's decision with ClassicDecider Controller
     */
    bool ControllerDecidesClassic(const EpochDecision& current) const;

    // Attributes
    Time m_interval;               //!< decision interval
    uint32_t m_batchSize;          //!< K
    Time m_decisionDelay;          //!< delay before a decision takes effect
    std::string m_channelName;     //!< agent channel
    Time m_agentTimeout;           //!< per-call timeout
    Time m_firstCallTimeout;       //!< timeout of the first call
    uint32_t m_maxConsecutiveTimeouts; //!< abandon the agent after this many (0: never)
    Mode m_mode;                   //!< who decides
    std::string m_teacherName;     //!< the acting teacher
    std::string m_teacherList;     //!< shadow teachers (Record)
    RecordActor m_recordActor;     //!< who acts in Record mode
    std::string m_recordPath;      //!< record file
    DataRate m_linkRate;           //!< initial capacity estimate (0: none)
    Time m_maxBurst;               //!< burst allowance after a quiet period
    OverloadRule m_overloadRule;   //!< what the overload rule follows under a decision
    AgentLDropRule m_agentLDrop;   //!< what the agent's per-packet drop of an L packet does
    AgentForwardRule m_agentForward; //!< what the agent's per-packet forward does (AgentForward)
    AgentDropRule m_agentDrop;       //!< what the agent's per-packet drop does (AgentDrop)
    ClassicDeciderRule m_classicDecider; //!< who decides classic packets under the agent

    // Fallback
    DualPi2Controller m_fallback;          //!< the fallback controller
    Ptr<UniformRandomVariable> m_uv;       //!< draws
    double m_epsilon{0};                      //!< ExplorationEpsilon
    Ptr<UniformRandomVariable> m_exploreRv;   //!< draws of the epsilon exploration (own stream)
    EventId m_epochEvent;                  //!< next epoch

    // Agent
    AgentClient m_agent;                     //!< the agent's channel and its failures
    bool m_agentActs{false};                 //!< the agent is the actor (else a teacher)

    // Teachers and decisions
    TeacherSet m_teachers;         //!< the teachers that run
    DecisionSchedule m_decisions;  //!< the decision in force and the pending ones

    // Epoch state
    EpochRequestBuilder m_measure; //!< interval measurements and the request's series
    agent::Request m_request;      //!< this epoch's request
    uint64_t m_epoch{0};           //!< next epoch index

    // Counters
    TracedValue<uint64_t> m_fallbacks{0}; //!< fallbacks
    uint64_t m_agentEpochs{0};
    uint64_t m_teacherEpochs{0};
    uint64_t m_agentRequestedFallbacks{0};

    // Record file
    EpochRecordWriter m_record; //!< the record file (Mode=Record)

    // Traces
    TracedCallback<uint64_t, int32_t, uint32_t> m_decisionTrace; //!< epoch, actor, outcome
};

} // namespace ns3

#endif /* L4S_LLM_QUEUE_DISC_H */
