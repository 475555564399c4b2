/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
// suite: l4s-llm-queue-disc
#include "dual-queue-test-helpers.h"

#include "ns3/agent-channel.h"
#include "ns3/aqm-queue-disc-registry.h"
#include "ns3/aqm-teachers.h"
#include "ns3/boolean.h"
#include "ns3/double.h"
#include "ns3/enum.h"
#include "ns3/ipv4-header.h"
#include "ns3/ipv4-queue-disc-item.h"
#include "ns3/l4s-llm-queue-disc.h"
#include "ns3/packet.h"
#include "ns3/queue-size.h"
#include "ns3/simulator.h"
#include "ns3/string.h"
#include "ns3/test.h"
#include "ns3/uinteger.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <poll.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace ns3;
using Q = L4sLlmQueueDisc;

namespace
{

using dualq_test::DrainAt;
using dualq_test::EnqueueAt;
using dualq_test::MakeItem;
using dualq_test::ModeName;
using dualq_test::PAYLOAD;
constexpr int64_t kIntervalNs = 16000000;

/// What the stub agent does.
enum class Policy
{
    STEP,        //!< L: mark if sojourn > 1 ms; C: mark if sojourn > 5 ms; epoch p = 0
    EPOCH_ALL,   //!< no per-packet actions; p_l_mark 1, p_c_drop 0, p_c_mark 1
    STALL_FROM,  //!< STEP, but never answer from epoch `arg` on
    SLOW_ONCE,   //!< STEP, but answer epoch 1 after `arg` ms
    INVALID_AT,  //!< STEP, but answer epoch `arg` with p_l_mark = 1.5
    ASK_FALLBACK, //!< STEP, but ask for the fallback at epoch `arg`
    MARKER,      //!< STEP with p_l_mark = 0.125, p_c_drop = 0.0625, p_c_mark = 0.25
    EPOCH_NONE,  //!< no per-packet actions; every epoch probability 0
    DROPPER,     //!< STEP's thresholds with drops for marks; epoch p = 0
    FORWARDER,   //!< per packet: drop Not-ECT, forward the rest; p_l_mark 1, p_c_drop 0, p_c_mark 1
    FORWARD_ALL, //!< per packet: forward all; p_l_mark 0.25, p_c_drop 0.125, p_c_mark 0.25
};

/**
 * A deterministic agent in a forked child: it creates the channel (as the real agent does),
 * checks each request's shape and epoch numbering (a bad one is answered kReplyError, which the
 * queue disc counts as invalid), and answers by Policy.
 */
class StubAgent
{
  public:
    StubAgent(Policy policy, int arg = 0)
    {
        m_name = AgentChannel::NewSegmentName();
        int fds[2];
        if (pipe(fds) != 0)
        {
            return;
        }
        const pid_t parent = getpid();
        m_pid = fork();
        if (m_pid == 0)
        {
            close(fds[0]);
            Serve(policy, arg, parent, fds[1]);
        }
        close(fds[1]);
        pollfd pfd{fds[0], POLLIN, 0};
        char c = 0;
        m_ready = poll(&pfd, 1, 5000) == 1 && read(fds[0], &c, 1) == 1 && c == 'R';
        close(fds[0]);
    }

    ~StubAgent()
    {
        Kill();
    }

    const std::string& Name() const
    {
        return m_name;
    }

    bool Ready() const
    {
        return m_ready;
    }

    /// SIGKILL the child and reap it.
    void Kill()
    {
        if (m_pid > 0)
        {
            kill(m_pid, SIGKILL);
            waitpid(m_pid, nullptr, 0);
            m_pid = -1;
        }
    }

    /// Wait for the child to exit (after the queue disc closed the channel).
    int Join(double seconds = 5.0)
    {
        const auto t0 = std::chrono::steady_clock::now();
        while (m_pid > 0)
        {
            int status = 0;
            if (waitpid(m_pid, &status, WNOHANG) == m_pid)
            {
                m_pid = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
            if (std::chrono::steady_clock::now() - t0 > std::chrono::duration<double>(seconds))
            {
                Kill();
                return -2;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return -3;
    }

  private:
    [[noreturn]] void Serve(Policy policy, int arg, pid_t parent, int readyFd)
    {
        AgentChannel::Options options;
        options.installSignalHandlers = false;
        options.expectedPeerPid = parent;
        auto opened = AgentChannel::Create(m_name, options);
        if (!opened.channel)
        {
            _exit(10);
        }
        AgentChannel& chan = *opened.channel;
        if (write(readyFd, "R", 1) != 1)
        {
            _exit(11);
        }
        close(readyFd);
        uint64_t expectedEpoch = 0;
        for (;;)
        {
            AgentChannel::Status s = chan.WaitRequest(20.0);
            if (s == AgentChannel::Status::PeerGone)
            {
                _exit(0);
            }
            if (s != AgentChannel::Status::Ok)
            {
                _exit(12);
            }
            const agent::Request& r = chan.RequestSlot();
            agent::Reply& rep = chan.ReplySlot();
            std::memset(&rep, 0, sizeof(rep));
            const uint64_t epoch = r.header.epoch;
            const bool sane = r.series_count == agent::kSeriesDefined &&
                              r.window_len == agent::kWindow &&
                              r.scalar_count == agent::kScalarDefined &&
                              r.reward_count == agent::kRewardDefined && r.packet_count <= 16 &&
                              epoch == expectedEpoch &&
                              r.header.sim_time_ns == int64_t(epoch + 1) * kIntervalNs;
            ++expectedEpoch;
            if (!sane)
            {
                rep.status = agent::kReplyError;
                chan.PostReply();
                continue;
            }
            if (policy == Policy::STALL_FROM && epoch >= uint64_t(arg))
            {
                for (;;)
                {
                    pause(); // until killed
                }
            }
            if (policy == Policy::SLOW_ONCE && epoch == 1)
            {
                std::this_thread::sleep_for(std::chrono::milliseconds(arg));
            }
            rep.status = agent::kReplyOk;
            if (policy == Policy::EPOCH_NONE)
            {
                // nothing: forward everything (the reply is all zeros)
            }
            else if (policy == Policy::EPOCH_ALL)
            {
                rep.p_l_mark = 1.0;
                rep.p_c_mark = 1.0;
            }
            else if (policy == Policy::FORWARDER || policy == Policy::FORWARD_ALL)
            {
                const bool all = policy == Policy::FORWARD_ALL;
                rep.action_count = r.packet_count;
                for (uint32_t i = 0; i < r.packet_count; ++i)
                {
                    rep.actions[i].uid = r.packets[i].uid;
                    rep.actions[i].action = !all && r.packets[i].ecn == Ipv4Header::ECN_NotECT
                                                ? agent::kActionDrop
                                                : agent::kActionForward;
                }
                rep.p_l_mark = all ? 0.25 : 1.0;
                rep.p_c_drop = all ? 0.125 : 0.0;
                rep.p_c_mark = all ? 0.25 : 1.0;
            }
            else
            {
                rep.action_count = r.packet_count;
                for (uint32_t i = 0; i < r.packet_count; ++i)
                {
                    const agent::PacketDescriptor& d = r.packets[i];
                    const double threshold = d.traffic_class == agent::kClassL ? 1e-3 : 5e-3;
                    rep.actions[i].uid = d.uid;
                    const uint8_t signal =
                        policy == Policy::DROPPER ? agent::kActionDrop : agent::kActionMark;
                    rep.actions[i].action =
                        d.sojourn_s > threshold ? signal : agent::kActionForward;
                }
            }
            if (policy == Policy::MARKER)
            {
                rep.p_l_mark = 0.125;
                rep.p_c_drop = 0.0625;
                rep.p_c_mark = 0.25;
            }
            if (policy == Policy::INVALID_AT && epoch == uint64_t(arg))
            {
                rep.p_l_mark = 1.5; // not a probability
            }
            if (policy == Policy::ASK_FALLBACK && epoch == uint64_t(arg))
            {
                rep.status = agent::kReplyFallback;
            }
            if (chan.PostReply(false) != AgentChannel::Status::Ok)
            {
                _exit(13);
            }
        }
    }

    std::string m_name;
    pid_t m_pid{-1};
    bool m_ready{false};
};

/// \return a queue disc with a large buffer in \p unit and attributes \p attrs, initialised
Ptr<Q>
MakeQueue(QueueSizeUnit unit,
          const std::vector<std::pair<std::string, std::string>>& attrs,
          uint32_t limitPackets = 1000)
{
    auto q = CreateObject<Q>();
    q->SetMaxSize(
        QueueSize(unit, unit == QueueSizeUnit::PACKETS ? limitPackets : limitPackets * 1000));
    for (const auto& [name, value] : attrs)
    {
        q->SetAttribute(name, StringValue(value));
    }
    q->AssignStreams(1);
    q->Initialize();
    return q;
}

/**
 * The mixed backlog of the per-packet drop tests: 5 ECT(1) + 1 CE L packets and 3 ECT(0) + 3
 * Not-ECT C packets enqueued at 1 ms, drained at 17 ms (after the epoch at 16 ms decided them).
 * \param q the queue disc
 * \return the packets forwarded
 */
uint32_t
RunMixedBacklog(Ptr<Q> q)
{
    uint32_t forwarded = 0;
    EnqueueAt(q, MilliSeconds(1), 5, Ipv4Header::ECN_ECT1);
    EnqueueAt(q, MilliSeconds(1), 1, Ipv4Header::ECN_CE);
    EnqueueAt(q, MilliSeconds(1), 3, Ipv4Header::ECN_ECT0);
    EnqueueAt(q, MilliSeconds(1), 3, Ipv4Header::ECN_NotECT);
    DrainAt(q, MilliSeconds(17), &forwarded);
    Simulator::Stop(MilliSeconds(18));
    Simulator::Run();
    return forwarded;
}

void
RecordDecision(std::vector<std::pair<uint64_t, int32_t>>* v, uint64_t epoch, int32_t actor, uint32_t)
{
    v->emplace_back(epoch, actor);
}

double
WallSince(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t
Marks(Ptr<Q> q, const char* reason)
{
    return q->GetStats().GetNMarkedPackets(reason);
}

uint64_t
Drops(Ptr<Q> q, const char* reason)
{
    return q->GetStats().GetNDroppedPackets(reason);
}

} // namespace

/**
 * \ingroup aqm-llm-tests
 * \brief Classifier, shared limit (forced drops) and the scheduler's L preference, without an
 * agent (teacher mode), in packet and byte mode.
 */
class L4sLlmClassifyTestCase : public TestCase
{
  public:
    L4sLlmClassifyTestCase(QueueSizeUnit unit)
        : TestCase("Classifier and shared limit, " + ModeName(unit) + " mode"),
          m_unit(unit)
    {
    }

  private:
    void DoRun() override
    {
        auto q = MakeQueue(m_unit, {{"Mode", "Teacher"}}, 10);
        const Ipv4Header::EcnType ecns[] = {Ipv4Header::ECN_ECT1,
                                            Ipv4Header::ECN_CE,
                                            Ipv4Header::ECN_ECT0,
                                            Ipv4Header::ECN_NotECT};
        uint32_t accepted = 0;
        for (int i = 0; i < 14; ++i)
        {
            accepted += q->Enqueue(MakeItem(ecns[i % 4])) ? 1 : 0;
        }
        NS_TEST_ASSERT_MSG_EQ(accepted, 10, "10 fit in the shared buffer");
        NS_TEST_ASSERT_MSG_EQ(Drops(q, Q::FORCED_DROP), 4, "forced drops at enqueue");
        NS_TEST_ASSERT_MSG_EQ(q->GetInternalQueue(Q::L_QUEUE)->GetNPackets(), 6, "ECT(1), CE in L");
        NS_TEST_ASSERT_MSG_EQ(q->GetInternalQueue(Q::C_QUEUE)->GetNPackets(), 4, "rest in C");
        // Weighted scheduler, both backlogged: L first (credit 0), then C once the credit is
        // negative (10% of L's bytes per L packet): L, C, L, L, ...
        std::vector<bool> order;
        while (Ptr<QueueDiscItem> item = q->Dequeue())
        {
            uint8_t tos = 0;
            item->GetUint8Value(QueueItem::IP_DSFIELD, tos);
            order.push_back((tos & 1) != 0);
        }
        NS_TEST_ASSERT_MSG_EQ(order.size(), 10, "all dequeued (no decision before epoch 0)");
        NS_TEST_ASSERT_MSG_EQ(order[0], true, "L first");
        NS_TEST_ASSERT_MSG_EQ(order[1], false, "then C (credit < 0)");
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().nTotalMarkedPackets, 0, "no marks");
        q->Dispose();
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit;
};

/**
 * \ingroup aqm-llm-tests
 * \brief A stub agent marks L packets over 1 ms and C packets over 5 ms (a mark on Not-ECT is a
 * drop, a mark on CE is a no-op); exact counts by reason; packets not described are forwarded
 * (epoch probabilities 0); only K = 16 packets are described. Packet and byte mode.
 */
class L4sLlmStubAgentTestCase : public TestCase
{
  public:
    L4sLlmStubAgentTestCase(QueueSizeUnit unit)
        : TestCase("Stub agent: per-packet marks and drops by uid, exact counts, " +
                   ModeName(unit) + " mode"),
          m_unit(unit)
    {
    }

  private:
    void DoRun() override
    {
        StubAgent stub(Policy::STEP);
        NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent created the channel");
        auto q = MakeQueue(m_unit, {{"ChannelName", stub.Name()}, {"AgentTimeout", "5s"}});
        uint32_t forwarded = 0;
        // Epoch 0 (16 ms): 5 ECT(1) + 1 CE in L, 3 ECT(0) + 3 Not-ECT in C, all waited 15 ms.
        EnqueueAt(q, MilliSeconds(1), 5, Ipv4Header::ECN_ECT1);
        EnqueueAt(q, MilliSeconds(1), 1, Ipv4Header::ECN_CE);
        EnqueueAt(q, MilliSeconds(1), 3, Ipv4Header::ECN_ECT0);
        EnqueueAt(q, MilliSeconds(1), 3, Ipv4Header::ECN_NotECT);
        DrainAt(q, MilliSeconds(17), &forwarded); // 5 L marks, 3 C marks, 3 C drops
        // Epoch 1 (32 ms): 4 L + 2 ECT(0) + 2 Not-ECT waited 12 ms; 3 L + 3 C waited 0.5 ms.
        EnqueueAt(q, MilliSeconds(20), 4, Ipv4Header::ECN_ECT1);
        EnqueueAt(q, MilliSeconds(20), 2, Ipv4Header::ECN_ECT0);
        EnqueueAt(q, MilliSeconds(20), 2, Ipv4Header::ECN_NotECT);
        EnqueueAt(q, MicroSeconds(31500), 3, Ipv4Header::ECN_ECT1);
        EnqueueAt(q, MicroSeconds(31500), 3, Ipv4Header::ECN_NotECT);
        // The 3 L the agent forwards (0.5 ms at the epoch) have waited 1.5 ms when they leave:
        // the native step marks the first two under the agent's forward (not the lone last one).
        DrainAt(q, MilliSeconds(33), &forwarded); // 4 + 2 + 2 marks, 2 drops, 4 untouched
        // Not described (arrive after epoch 1), epoch probabilities 0, waited 6.5 ms: the
        // native step marks the first (another L packet behind it), not the lone last one.
        EnqueueAt(q, MicroSeconds(33500), 2, Ipv4Header::ECN_ECT1);
        DrainAt(q, MilliSeconds(40), &forwarded);
        // Epoch 2 (48 ms): 20 L packets waited 14 ms; only the first 16 are described; of the
        // other 4 the native step marks all but the lone last one.
        EnqueueAt(q, MilliSeconds(41), 20, Ipv4Header::ECN_ECT1);
        DrainAt(q, MilliSeconds(49), &forwarded); // 16 + 3 marks, 1 untouched
        Simulator::Stop(MilliSeconds(50));
        Simulator::Run();

        NS_TEST_EXPECT_MSG_EQ(Marks(q, Q::AGENT_MARK), 5 + 3 + 4 + 2 + 16, "agent marks");
        NS_TEST_EXPECT_MSG_EQ(Marks(q, Q::AGENT_EPOCH_MARK), 2 + 1 + 3, "native step under forward and p_L = 0");
        NS_TEST_EXPECT_MSG_EQ(Drops(q, Q::AGENT_DROP), 3 + 2, "marks on Not-ECT are drops");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalMarkedPackets, 36, "no other marks");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalDroppedPackets, 5, "no other drops");
        NS_TEST_EXPECT_MSG_EQ(forwarded, 12 - 3 + 14 - 2 + 2 + 20, "forwarded");
        NS_TEST_EXPECT_MSG_EQ(q->GetEpochCount(), 3, "three epochs");
        NS_TEST_EXPECT_MSG_EQ(q->GetAgentEpochCount(), 3, "all decided by the agent");
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 0, "no fallback");
        NS_TEST_EXPECT_MSG_EQ(q->GetOutcomeCount(Q::OUTCOME_INVALID), 0, "requests well formed");
        NS_TEST_EXPECT_MSG_EQ(q->IsReproducible(), true, "reproducible");
        q->Dispose();
        NS_TEST_EXPECT_MSG_EQ(stub.Join(), 0, "the agent saw the channel close and exited");
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit;
};

/**
 * \ingroup aqm-llm-tests
 * \brief DecisionDelay: epoch 0's decision (mark every L and C packet not described) takes
 * effect 5 ms after its request; until then the fallback (p' = 0, short sojourns: nothing) is in
 * force. With no delay it takes effect at once. Packet and byte mode.
 */
class L4sLlmDecisionDelayTestCase : public TestCase
{
  public:
    L4sLlmDecisionDelayTestCase(QueueSizeUnit unit, bool delayed)
        : TestCase(std::string("DecisionDelay ") + (delayed ? "5 ms" : "0") +
                   ": epoch probabilities apply from the request + delay, " + ModeName(unit) +
                   " mode"),
          m_unit(unit),
          m_delayed(delayed)
    {
    }

  private:
    void DoRun() override
    {
        StubAgent stub(Policy::EPOCH_ALL);
        NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent created the channel");
        auto q = MakeQueue(m_unit,
                           {{"ChannelName", stub.Name()},
                            {"AgentTimeout", "5s"},
                            {"DecisionDelay", m_delayed ? "5ms" : "0s"}});
        std::vector<std::pair<uint64_t, int32_t>> decisions;
        q->TraceConnectWithoutContext("Decision", MakeBoundCallback(&RecordDecision, &decisions));
        uint32_t forwarded = 0;
        // Between the request (16 ms) and the delayed effect (21 ms).
        EnqueueAt(q, MilliSeconds(17), 2, Ipv4Header::ECN_ECT1);
        EnqueueAt(q, MilliSeconds(17), 1, Ipv4Header::ECN_ECT0);
        EnqueueAt(q, MilliSeconds(17), 1, Ipv4Header::ECN_NotECT);
        DrainAt(q, MicroSeconds(17100), &forwarded);
        // After it.
        EnqueueAt(q, MilliSeconds(22), 2, Ipv4Header::ECN_ECT1);
        EnqueueAt(q, MilliSeconds(22), 1, Ipv4Header::ECN_ECT0);
        EnqueueAt(q, MilliSeconds(22), 1, Ipv4Header::ECN_NotECT);
        DrainAt(q, MicroSeconds(22100), &forwarded);
        Simulator::Stop(MilliSeconds(25));
        Simulator::Run();

        const uint64_t early = m_delayed ? 0 : 3;
        const uint64_t earlyDrops = m_delayed ? 0 : 1;
        NS_TEST_EXPECT_MSG_EQ(Marks(q, Q::AGENT_EPOCH_MARK), early + 3, "L and ECT(0) marked");
        NS_TEST_EXPECT_MSG_EQ(Drops(q, Q::AGENT_EPOCH_DROP), earlyDrops + 1, "Not-ECT dropped");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalMarkedPackets, early + 3, "no fallback marks");
        NS_TEST_EXPECT_MSG_EQ(forwarded, 8 - earlyDrops - 1, "forwarded");
        NS_TEST_EXPECT_MSG_EQ(decisions.size(), 1, "one epoch");
        NS_TEST_EXPECT_MSG_EQ(decisions[0].second, Q::ACTOR_AGENT, "decided by the agent");
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 0, "no fallback");
        q->Dispose();
        NS_TEST_EXPECT_MSG_EQ(stub.Join(), 0, "agent exited");
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit;
    bool m_delayed;
};

/**
 * \ingroup aqm-llm-tests
 * \brief OverloadRule: the fallback's p' saturates (a classic packet waits 1 s) while the agent
 * decides. Controller: L packets are dropped with p'^2 = 1 whatever the agent's p_L (0).
 * Decision: the agent's p_L = 0 is not saturated, nothing is dropped; its p_L = 1 with a classic
 * signal of 1 drops every L packet. Exact counts by reason, packet and byte mode.
 */
class L4sLlmOverloadRuleTestCase : public TestCase
{
  public:
    L4sLlmOverloadRuleTestCase(QueueSizeUnit unit, bool decision, Policy policy)
        : TestCase(std::string("OverloadRule ") + (decision ? "Decision" : "Controller") +
                   (policy == Policy::EPOCH_ALL ? ", agent p_L 1" : ", agent p_L 0") + ", " +
                   ModeName(unit) + " mode"),
          m_unit(unit),
          m_decision(decision),
          m_policy(policy)
    {
    }

  private:
    void DoRun() override
    {
        StubAgent stub(m_policy);
        NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent created the channel");
        auto q = MakeQueue(m_unit,
                           {{"ChannelName", stub.Name()},
                            {"AgentTimeout", "5s"},
                            {"OverloadRule", m_decision ? "Decision" : "Controller"}});
        uint32_t forwarded = 0;
        // 5 Not-ECT classic packets wait from 1 ms to 1 s: the PI controller's p' reaches 1.
        EnqueueAt(q, MilliSeconds(1), 5, Ipv4Header::ECN_NotECT);
        // 10 L packets arrive at 1000 ms and leave at once (no native mark: sojourn 0), with the
        // classic packets, under the agent's epoch probabilities.
        EnqueueAt(q, MilliSeconds(1000), 10, Ipv4Header::ECN_ECT1);
        DrainAt(q, MilliSeconds(1000), &forwarded);
        Simulator::Stop(MilliSeconds(1001));
        Simulator::Run();

        const bool all = m_policy == Policy::EPOCH_ALL;
        const uint64_t overload = !m_decision || all ? 10 : 0;
        const uint64_t classicDrops = all ? 5 : 0; // a mark with p_C 1 on Not-ECT is a drop
        NS_TEST_EXPECT_MSG_EQ(Drops(q, Q::OVERLOAD_L4S_DROP), overload, "overload L4S drops");
        NS_TEST_EXPECT_MSG_EQ(Drops(q, Q::AGENT_EPOCH_DROP), classicDrops, "classic drops");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalDroppedPackets, overload + classicDrops,
                              "no other drops");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalMarkedPackets, 0, "no marks");
        NS_TEST_EXPECT_MSG_EQ(forwarded, 15 - overload - classicDrops, "forwarded");
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 0, "no fallback");
        q->Dispose();
        NS_TEST_EXPECT_MSG_EQ(stub.Join(), 0, "agent exited");
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit;
    bool m_decision;
    Policy m_policy;
};

/**
 * \ingroup aqm-llm-tests
 * \brief LSojournLimit: 4 L packets wait 29 ms, 3 more 0.5 ms, 2 classic ECT(0) ones 29 ms, all
 * dequeued at 30 ms. With a 20 ms limit the 4 long-waiting L packets are dropped (and nothing
 * else: the classic ones waited as long), whether the agent (every probability 0) or the fallback
 * decides; with the default (0: off) none is. Exact counts by reason, packet and byte mode.
 */
class L4sLlmSojournLimitTestCase : public TestCase
{
  public:
    L4sLlmSojournLimitTestCase(QueueSizeUnit unit, bool limit, bool agent)
        : TestCase(std::string("LSojournLimit ") + (limit ? "20ms" : "off") + ", " +
                   (agent ? "agent" : "fallback") + " decides, " + ModeName(unit) + " mode"),
          m_unit(unit),
          m_limit(limit),
          m_agent(agent)
    {
    }

  private:
    void DoRun() override
    {
        std::unique_ptr<StubAgent> stub;
        std::vector<std::pair<std::string, std::string>> attrs{
            {"LSojournLimit", m_limit ? "20ms" : "0s"}};
        if (m_agent)
        {
            stub = std::make_unique<StubAgent>(Policy::EPOCH_NONE);
            NS_TEST_ASSERT_MSG_EQ(stub->Ready(), true, "stub agent created the channel");
            attrs.emplace_back("ChannelName", stub->Name());
            attrs.emplace_back("AgentTimeout", "5s");
        }
        auto q = MakeQueue(m_unit, attrs);
        uint32_t forwarded = 0;
        EnqueueAt(q, MilliSeconds(1), 4, Ipv4Header::ECN_ECT1);
        EnqueueAt(q, MilliSeconds(1), 2, Ipv4Header::ECN_ECT0);
        EnqueueAt(q, MicroSeconds(29500), 3, Ipv4Header::ECN_ECT1);
        DrainAt(q, MilliSeconds(30), &forwarded);
        Simulator::Stop(MilliSeconds(31));
        Simulator::Run();

        const uint64_t limitDrops = m_limit ? 4 : 0;
        NS_TEST_EXPECT_MSG_EQ(Drops(q, Q::L_SOJOURN_LIMIT_DROP), limitDrops, "limit drops");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalDroppedPackets, limitDrops, "no other drops");
        NS_TEST_EXPECT_MSG_EQ(forwarded, 9 - limitDrops, "forwarded");
        NS_TEST_EXPECT_MSG_EQ((q->GetFallbackCount() > 0), !m_agent, "who decided");
        q->Dispose();
        if (stub)
        {
            NS_TEST_EXPECT_MSG_EQ(stub->Join(), 0, "agent exited");
        }
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit;
    bool m_limit;
    bool m_agent;
};

/**
 * \ingroup aqm-llm-tests
 * \brief AgentDrop and AgentLDrop: the agent drops every L packet over 1 ms and every C packet
 * over 5 ms, with epoch probabilities 0. 5 ECT(1) + 1 CE L packets and 3 ECT(0) + 3 Not-ECT C
 * packets waited 15 ms. Drop: 12 agent drops. AgentLDrop Mark: the 5 ECT(1) are marked (the CE
 * one forwarded as it is), the C packets still dropped. AgentDrop Draw: each dropped packet takes
 * the epoch draw instead -- no drop; the 5 ECT(1) L packets get the native ramp's mark (15 ms,
 * more than one L packet queued), the CE one and the C packets are forwarded. Draw with AgentLDrop
 * Mark: the L drops are marks as before, the C packets forwarded. Packet and byte mode.
 */
class L4sLlmAgentDropTestCase : public TestCase
{
  public:
    /// \param unit packet or byte mode \param draw AgentDrop Draw \param lMark AgentLDrop Mark
    L4sLlmAgentDropTestCase(QueueSizeUnit unit, bool draw, bool lMark)
        : TestCase(std::string("AgentDrop ") + (draw ? "Draw" : "Drop") +
                   (lMark ? ", AgentLDrop Mark" : "") + ", " + ModeName(unit) + " mode"),
          m_unit(unit),
          m_draw(draw),
          m_lMark(lMark)
    {
    }

  private:
    void DoRun() override
    {
        StubAgent stub(Policy::DROPPER);
        NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent created the channel");
        auto q = MakeQueue(m_unit,
                           {{"ChannelName", stub.Name()},
                            {"AgentTimeout", "5s"},
                            {"AgentDrop", m_draw ? "Draw" : "Drop"},
                            {"AgentLDrop", m_lMark ? "Mark" : "Drop"}});
        const uint32_t forwarded = RunMixedBacklog(q);

        const uint64_t lDropsAsMarks = m_lMark ? 5 : 0;
        const uint64_t epochMarks = m_draw && !m_lMark ? 5 : 0;
        const uint64_t agentDrops = (m_draw ? 0 : 6) + (m_draw || m_lMark ? 0 : 6); // C, then L
        NS_TEST_EXPECT_MSG_EQ(Drops(q, Q::AGENT_DROP), agentDrops, "agent drops");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalDroppedPackets, agentDrops, "no other drops");
        NS_TEST_EXPECT_MSG_EQ(Marks(q, Q::AGENT_L_DROP_AS_MARK), lDropsAsMarks, "L drops as marks");
        NS_TEST_EXPECT_MSG_EQ(Marks(q, Q::AGENT_EPOCH_MARK), epochMarks, "epoch (native ramp) marks");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalMarkedPackets,
                              lDropsAsMarks + epochMarks,
                              "no other marks");
        NS_TEST_EXPECT_MSG_EQ(forwarded, 12 - agentDrops, "forwarded");
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 0, "no fallback");
        q->Dispose();
        NS_TEST_EXPECT_MSG_EQ(stub.Join(), 0, "the agent saw the channel close and exited");
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit;
    bool m_draw;
    bool m_lMark;
};

/**
 * \ingroup aqm-llm-tests
 * \brief AgentForward: the agent drops the Not-ECT packets of the batch and forwards the rest,
 * with epoch probabilities p_L mark 1, p_C mark 1. 1 ECT(1) L packet (alone in the L queue: no
 * native mark), 3 ECT(0) and 3 Not-ECT C packets waited 16 ms. Forward: 3 agent drops, nothing
 * marked, 4 forwarded. Draw: the same 3 agent drops, and the 4 forwarded packets take the epoch
 * draw: 4 epoch marks. Packet and byte mode.
 */
class L4sLlmAgentForwardTestCase : public TestCase
{
  public:
    L4sLlmAgentForwardTestCase(QueueSizeUnit unit, bool draw)
        : TestCase(std::string("AgentForward ") + (draw ? "Draw" : "Forward") + ", " +
                   ModeName(unit) + " mode"),
          m_unit(unit),
          m_draw(draw)
    {
    }

  private:
    void DoRun() override
    {
        StubAgent stub(Policy::FORWARDER);
        NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent created the channel");
        auto q = MakeQueue(m_unit,
                           {{"ChannelName", stub.Name()},
                            {"AgentTimeout", "5s"},
                            {"AgentForward", m_draw ? "Draw" : "Forward"}});
        uint32_t forwarded = 0;
        EnqueueAt(q, MilliSeconds(1), 1, Ipv4Header::ECN_ECT1);
        EnqueueAt(q, MilliSeconds(1), 3, Ipv4Header::ECN_ECT0);
        EnqueueAt(q, MilliSeconds(1), 3, Ipv4Header::ECN_NotECT);
        DrainAt(q, MilliSeconds(17), &forwarded);
        Simulator::Stop(MilliSeconds(18));
        Simulator::Run();

        const uint64_t epochMarks = m_draw ? 4 : 0;
        NS_TEST_EXPECT_MSG_EQ(Drops(q, Q::AGENT_DROP), 3, "the agent's drops stand");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalDroppedPackets, 3, "no other drops");
        NS_TEST_EXPECT_MSG_EQ(Marks(q, Q::AGENT_EPOCH_MARK), epochMarks, "epoch marks");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalMarkedPackets, epochMarks, "no other marks");
        NS_TEST_EXPECT_MSG_EQ(forwarded, 4, "forwarded");
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 0, "no fallback");
        q->Dispose();
        NS_TEST_EXPECT_MSG_EQ(stub.Join(), 0, "the agent saw the channel close and exited");
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit;
    bool m_draw;
};

/**
 * \ingroup aqm-llm-tests
 * \brief ClassicDecider: the agent drops every L packet over 1 ms and every C packet over 5 ms,
 * with epoch probabilities 0; 5 ECT(1) + 1 CE L packets and 3 ECT(0) + 3 Not-ECT C packets waited
 * 15 ms when the epoch at 16 ms decides. The controller's p' there is 0 (FallbackTarget 1 s) or 1
 * (FallbackBeta 1000: the L queue saturated, p_C = 1 >= p_Cmax). Agent: the agent's 6 C drops
 * stand (with p' = 1 the 6 L packets are the overload rule's). Controller: the C packets are the
 * controller's -- forwarded at p' = 0 (the agent's drops ignored), dropped at p' = 1 (Not-ECT:
 * no mark; ECT(0): p_C >= p_Cmax), counted as controller drops -- while the L packets stay the
 * agent's (6 agent drops at p' = 0). Packet and byte mode.
 */
class L4sLlmClassicDeciderTestCase : public TestCase
{
  public:
    /// \param unit packet or byte mode \param controller ClassicDecider Controller
    /// \param saturated the controller's p' is 1 (else 0)
    L4sLlmClassicDeciderTestCase(QueueSizeUnit unit, bool controller, bool saturated)
        : TestCase(std::string("ClassicDecider ") + (controller ? "Controller" : "Agent") +
                   ", p' " + (saturated ? "1" : "0") + ", " + ModeName(unit) + " mode"),
          m_unit(unit),
          m_controller(controller),
          m_saturated(saturated)
    {
    }

  private:
    void DoRun() override
    {
        StubAgent stub(Policy::DROPPER);
        NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent created the channel");
        auto q = MakeQueue(m_unit,
                           {{"ChannelName", stub.Name()},
                            {"AgentTimeout", "5s"},
                            {"ClassicDecider", m_controller ? "Controller" : "Agent"},
                            {m_saturated ? "FallbackBeta" : "FallbackTarget",
                             m_saturated ? "1000" : "1s"}});
        const uint32_t forwarded = RunMixedBacklog(q);

        const double pBase = q->GetFallbackController().GetProbBase();
        NS_TEST_ASSERT_MSG_EQ_TOL(pBase, (m_saturated ? 1.0 : 0.0), 1e-12, "the controller's p'");
        const uint64_t overloadL = m_saturated ? 6 : 0;
        const uint64_t agentDrops = (m_saturated ? 0 : 6) + (m_controller ? 0 : 6); // L, then C
        const uint64_t controllerDrops = m_controller && m_saturated ? 6 : 0;
        NS_TEST_EXPECT_MSG_EQ(Drops(q, Q::OVERLOAD_L4S_DROP), overloadL, "overload L4S drops");
        NS_TEST_EXPECT_MSG_EQ(Drops(q, Q::AGENT_DROP), agentDrops, "agent drops");
        NS_TEST_EXPECT_MSG_EQ(Drops(q, Q::CONTROLLER_CLASSIC_DROP),
                              controllerDrops,
                              "controller classic drops");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalDroppedPackets,
                              overloadL + agentDrops + controllerDrops,
                              "no other drops");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalMarkedPackets, 0, "no marks");
        NS_TEST_EXPECT_MSG_EQ(forwarded,
                              12 - overloadL - agentDrops - controllerDrops,
                              "forwarded");
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 0, "no fallback");
        q->Dispose();
        NS_TEST_EXPECT_MSG_EQ(stub.Join(), 0, "the agent saw the channel close and exited");
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit;
    bool m_controller;
    bool m_saturated;
};

/**
 * \ingroup aqm-llm-tests
 * \brief AgentForward Draw, draw for draw: an agent that forwards its whole batch with fractional
 * epoch probabilities (p_L mark 0.25, p_C drop 0.125, p_C mark 0.25) gives, with Draw, the same
 * drops and marks by reason as with BatchSize 0 (every packet by the epoch draw, on the same
 * seeded stream), and not the same with Forward; a teacher's run is the same under Draw and
 * Forward. Ten epochs of L (ECT(1), CE) and C (ECT(0), Not-ECT) traffic kept backlogged across
 * the epoch boundaries. Packet and byte mode.
 */
class L4sLlmAgentForwardDrawTestCase : public TestCase
{
  public:
    L4sLlmAgentForwardDrawTestCase(QueueSizeUnit unit)
        : TestCase("AgentForward Draw = BatchSize 0, teachers unaffected, " + ModeName(unit) +
                   " mode"),
          m_unit(unit)
    {
    }

  private:
    /// Per-reason counts and the number forwarded after a run with \p attrs (and a FORWARD_ALL
    /// stub agent unless \p teacher).
    std::vector<uint64_t> Run(std::vector<std::pair<std::string, std::string>> attrs, bool teacher)
    {
        std::unique_ptr<StubAgent> stub;
        if (teacher)
        {
            attrs.emplace_back("Mode", "Teacher");
        }
        else
        {
            stub = std::make_unique<StubAgent>(Policy::FORWARD_ALL);
            NS_TEST_EXPECT_MSG_EQ(stub->Ready(), true, "stub agent ready");
            attrs.emplace_back("ChannelName", stub->Name());
            attrs.emplace_back("AgentTimeout", "5s");
        }
        auto q = MakeQueue(m_unit, attrs);
        uint32_t forwarded = 0;
        for (Time t = MilliSeconds(1); t < MilliSeconds(160); t += MilliSeconds(4))
        {
            EnqueueAt(q, t, 2, Ipv4Header::ECN_ECT1);
            EnqueueAt(q, t, 1, Ipv4Header::ECN_CE);
            EnqueueAt(q, t, 2, Ipv4Header::ECN_ECT0);
            EnqueueAt(q, t, 1, Ipv4Header::ECN_NotECT);
            DrainAt(q, t + MilliSeconds(12), &forwarded); // 18 packets queued at each epoch
        }
        Simulator::Stop(MilliSeconds(175));
        Simulator::Run();
        std::vector<uint64_t> counts{forwarded};
        for (const char* reason : {Q::AGENT_DROP, Q::AGENT_EPOCH_DROP, Q::TEACHER_DROP,
                                   Q::TEACHER_EPOCH_DROP, Q::FALLBACK_DROP, Q::OVERLOAD_L4S_DROP})
        {
            counts.push_back(Drops(q, reason));
        }
        for (const char* reason : {Q::AGENT_MARK, Q::AGENT_EPOCH_MARK, Q::TEACHER_MARK,
                                   Q::TEACHER_EPOCH_MARK, Q::FALLBACK_MARK})
        {
            counts.push_back(Marks(q, reason));
        }
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 0, "no fallback");
        q->Dispose();
        if (stub)
        {
            NS_TEST_EXPECT_MSG_EQ(stub->Join(), 0, "agent exited");
        }
        Simulator::Destroy();
        return counts;
    }

    void DoRun() override
    {
        const auto draw = Run({{"AgentForward", "Draw"}}, false);
        const auto noBatch = Run({{"BatchSize", "0"}}, false);
        const auto forward = Run({{"AgentForward", "Forward"}}, false);
        NS_TEST_EXPECT_MSG_EQ(draw.size(), noBatch.size(), "same reasons");
        for (size_t i = 0; i < draw.size(); ++i)
        {
            NS_TEST_EXPECT_MSG_EQ(draw[i], noBatch[i], "Draw = BatchSize 0, count " << i);
        }
        NS_TEST_EXPECT_MSG_GT(draw[2], 0, "epoch drops drawn");
        NS_TEST_EXPECT_MSG_GT(draw[8], 0, "epoch marks drawn");
        NS_TEST_EXPECT_MSG_EQ((forward != draw), true, "Forward differs: the batch is forwarded");
        const auto teacherDraw = Run({{"AgentForward", "Draw"}}, true);
        const auto teacherForward = Run({{"AgentForward", "Forward"}}, true);
        NS_TEST_EXPECT_MSG_EQ((teacherDraw == teacherForward), true, "teachers unaffected");
        NS_TEST_EXPECT_MSG_GT(teacherDraw[3] + teacherDraw[4] + teacherDraw[9] + teacherDraw[10],
                              0,
                              "the teacher signalled");
    }

    QueueSizeUnit m_unit;
};

/**
 * \ingroup aqm-llm-tests
 * \brief Agent failures: a stalled agent (timeouts, with and without abandoning it), one late
 * reply (one fallback, then back to the agent), an invalid reply, an agent asking for the
 * fallback, a killed agent (no waiting afterwards, measured in wall time) and no agent at all.
 */
class L4sLlmAgentFailureTestCase : public TestCase
{
  public:
    L4sLlmAgentFailureTestCase()
        : TestCase("Agent failures fall back to DualPI2 and never hang the run")
    {
    }

  private:
    /// Light traffic so that decisions have something to act on.
    static void Traffic(Ptr<Q> q, Time stop, uint32_t* forwarded)
    {
        for (Time t = MilliSeconds(1); t < stop; t += MilliSeconds(4))
        {
            EnqueueAt(q, t, 2, Ipv4Header::ECN_ECT1);
            EnqueueAt(q, t, 1, Ipv4Header::ECN_NotECT);
            DrainAt(q, t + MilliSeconds(3), forwarded);
        }
    }

    void Stalled(uint32_t maxTimeouts)
    {
        StubAgent stub(Policy::STALL_FROM, 2);
        NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent ready");
        auto q = MakeQueue(QueueSizeUnit::PACKETS,
                           {{"ChannelName", stub.Name()},
                            {"AgentTimeout", "30ms"},
                            {"MaxConsecutiveTimeouts", std::to_string(maxTimeouts)}});
        uint32_t forwarded = 0;
        Traffic(q, MilliSeconds(160), &forwarded);
        const auto t0 = std::chrono::steady_clock::now();
        Simulator::Stop(MilliSeconds(161)); // epochs 0..9
        Simulator::Run();
        const double wall = WallSince(t0);
        NS_TEST_EXPECT_MSG_EQ(q->GetEpochCount(), 10, "ten epochs");
        NS_TEST_EXPECT_MSG_EQ(q->GetAgentEpochCount(), 2, "the agent answered two");
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 8, "eight fallbacks");
        NS_TEST_EXPECT_MSG_EQ(q->IsReproducible(), false, "not reproducible");
        const uint64_t timeouts = maxTimeouts == 0 ? 8 : maxTimeouts;
        NS_TEST_EXPECT_MSG_EQ(q->GetOutcomeCount(Q::OUTCOME_TIMEOUT), timeouts, "timeouts");
        NS_TEST_EXPECT_MSG_EQ(q->GetOutcomeCount(Q::OUTCOME_ABANDONED), 8 - timeouts, "abandoned");
        NS_TEST_EXPECT_MSG_EQ(forwarded + q->GetStats().nTotalDroppedPackets, 120, "all served");
        // Each timeout costs 30 ms of wall time, abandoned epochs none.
        NS_TEST_EXPECT_MSG_GT(wall, 0.029 * timeouts, "waited for each timeout");
        NS_TEST_EXPECT_MSG_LT(wall, 0.030 * timeouts + 1.0, "and not more");
        q->Dispose();
        stub.Kill();
        Simulator::Destroy();
    }

    void SlowOnce()
    {
        // Epoch 1's reply comes 300 ms late (timeout 200 ms): epoch 1 falls back; epoch 2 first
        // waits for (and discards) the late reply, then gets its own in time.
        StubAgent stub(Policy::SLOW_ONCE, 300);
        NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent ready");
        auto q = MakeQueue(QueueSizeUnit::PACKETS,
                           {{"ChannelName", stub.Name()}, {"AgentTimeout", "200ms"}});
        uint32_t forwarded = 0;
        Traffic(q, MilliSeconds(80), &forwarded);
        Simulator::Stop(MilliSeconds(81)); // epochs 0..4
        Simulator::Run();
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 1, "one fallback");
        NS_TEST_EXPECT_MSG_EQ(q->GetOutcomeCount(Q::OUTCOME_TIMEOUT), 1, "one timeout");
        NS_TEST_EXPECT_MSG_EQ(q->GetAgentEpochCount(), 4, "the agent decided the others");
        NS_TEST_EXPECT_MSG_EQ(q->GetOutcomeCount(Q::OUTCOME_INVALID), 0, "no stale reply taken");
        q->Dispose();
        NS_TEST_EXPECT_MSG_EQ(stub.Join(), 0, "agent exited");
        Simulator::Destroy();
    }

    void Invalid()
    {
        StubAgent stub(Policy::INVALID_AT, 1);
        NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent ready");
        auto q = MakeQueue(QueueSizeUnit::PACKETS,
                           {{"ChannelName", stub.Name()}, {"AgentTimeout", "5s"}});
        uint32_t forwarded = 0;
        Traffic(q, MilliSeconds(64), &forwarded);
        Simulator::Stop(MilliSeconds(65)); // epochs 0..3
        Simulator::Run();
        NS_TEST_EXPECT_MSG_EQ(q->GetOutcomeCount(Q::OUTCOME_INVALID), 1, "one invalid reply");
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 1, "one fallback");
        NS_TEST_EXPECT_MSG_EQ(q->GetAgentEpochCount(), 3, "the others by the agent");
        q->Dispose();
        NS_TEST_EXPECT_MSG_EQ(stub.Join(), 0, "agent exited");
        Simulator::Destroy();
    }

    void AskFallback()
    {
        StubAgent stub(Policy::ASK_FALLBACK, 2);
        NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent ready");
        auto q = MakeQueue(QueueSizeUnit::PACKETS,
                           {{"ChannelName", stub.Name()}, {"AgentTimeout", "5s"}});
        Simulator::Stop(MilliSeconds(65));
        Simulator::Run();
        NS_TEST_EXPECT_MSG_EQ(q->GetOutcomeCount(Q::OUTCOME_AGENT_FALLBACK), 1, "asked once");
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 0, "not counted as a fallback");
        NS_TEST_EXPECT_MSG_EQ(q->GetAgentEpochCount(), 3, "three agent epochs");
        NS_TEST_EXPECT_MSG_EQ(q->IsReproducible(), true, "still reproducible");
        q->Dispose();
        NS_TEST_EXPECT_MSG_EQ(stub.Join(), 0, "agent exited");
        Simulator::Destroy();
    }

    void Killed()
    {
        StubAgent stub(Policy::STEP);
        NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent ready");
        // A 5 s timeout: waiting for the dead agent even once would show in the wall time.
        auto q = MakeQueue(QueueSizeUnit::PACKETS,
                           {{"ChannelName", stub.Name()}, {"AgentTimeout", "5s"}});
        uint32_t forwarded = 0;
        Traffic(q, Seconds(2), &forwarded);
        Simulator::Schedule(MilliSeconds(50), [&stub]() { stub.Kill(); }); // after epoch 2
        const auto t0 = std::chrono::steady_clock::now();
        Simulator::Stop(MilliSeconds(2001)); // epochs 0..124
        Simulator::Run();
        const double wall = WallSince(t0);
        NS_TEST_EXPECT_MSG_EQ(q->GetEpochCount(), 125, "125 epochs");
        NS_TEST_EXPECT_MSG_EQ(q->GetAgentEpochCount(), 3, "three before the kill");
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 122, "fallback for the rest");
        NS_TEST_EXPECT_MSG_EQ(q->GetOutcomeCount(Q::OUTCOME_PEER_GONE), 122, "peer gone");
        NS_TEST_EXPECT_MSG_EQ(q->GetOutcomeCount(Q::OUTCOME_TIMEOUT), 0, "never timed out");
        NS_TEST_EXPECT_MSG_LT(wall, 2.0, "no waiting on the dead agent");
        NS_TEST_EXPECT_MSG_EQ(forwarded + q->GetStats().nTotalDroppedPackets, 1500, "all served");
        q->Dispose();
        Simulator::Destroy();
    }

    void NoAgent()
    {
        auto q = MakeQueue(QueueSizeUnit::PACKETS, {});
        Simulator::Stop(MilliSeconds(81));
        Simulator::Run();
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 5, "every epoch falls back");
        NS_TEST_EXPECT_MSG_EQ(q->GetOutcomeCount(Q::OUTCOME_NO_AGENT), 5, "no agent");
        NS_TEST_EXPECT_MSG_EQ(q->IsReproducible(), false, "reported");
        q->Dispose();
        Simulator::Destroy();
        // A channel name nobody created: the same, no abort.
        auto q2 = MakeQueue(QueueSizeUnit::PACKETS,
                            {{"ChannelName", AgentChannel::NewSegmentName()}});
        Simulator::Stop(MilliSeconds(33));
        Simulator::Run();
        NS_TEST_EXPECT_MSG_EQ(q2->GetFallbackCount(), 2, "every epoch falls back");
        q2->Dispose();
        Simulator::Destroy();
    }

    void DoRun() override
    {
        Stalled(0);
        Stalled(3);
        SlowOnce();
        Invalid();
        AskFallback();
        Killed();
        NoAgent();
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief Teacher mode needs no agent: pie-step marks the described L packets over 1 ms and,
 * its L head being over 1 ms, every L packet of the epoch; every base teacher runs a busy queue.
 */
class L4sLlmTeacherModeTestCase : public TestCase
{
  public:
    L4sLlmTeacherModeTestCase()
        : TestCase("Teacher mode works without an agent")
    {
    }

  private:
    void DoRun() override
    {
        auto q = MakeQueue(QueueSizeUnit::PACKETS, {{"Mode", "Teacher"}, {"Teacher", "pie-step"}});
        uint32_t forwarded = 0;
        EnqueueAt(q, MilliSeconds(1), 6, Ipv4Header::ECN_ECT1);
        EnqueueAt(q, MilliSeconds(1), 2, Ipv4Header::ECN_NotECT);
        DrainAt(q, MilliSeconds(17), &forwarded); // described: 6 L marked, C untouched
        EnqueueAt(q, MilliSeconds(18), 4, Ipv4Header::ECN_ECT1);
        DrainAt(q, MicroSeconds(18100), &forwarded); // epoch p_L = 1
        Simulator::Stop(MilliSeconds(20));
        Simulator::Run();
        NS_TEST_EXPECT_MSG_EQ(Marks(q, Q::TEACHER_MARK), 6, "per-packet teacher marks");
        NS_TEST_EXPECT_MSG_EQ(Marks(q, Q::TEACHER_EPOCH_MARK), 4, "epoch teacher marks");
        NS_TEST_EXPECT_MSG_EQ(q->GetStats().nTotalDroppedPackets, 0, "PIE in its burst allowance");
        NS_TEST_EXPECT_MSG_EQ(q->GetTeacherEpochCount(), 1, "one teacher epoch");
        NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 0, "no fallback");
        NS_TEST_EXPECT_MSG_EQ(q->IsReproducible(), true, "reproducible");
        q->Dispose();
        Simulator::Destroy();

        // Each teacher under an overload: 3 packets per ms in, 2 out, for 1 s.
        for (const auto& name : AqmTeacher::DefaultSet())
        {
            auto t = MakeQueue(QueueSizeUnit::PACKETS, {{"Mode", "Teacher"}, {"Teacher", name}});
            uint32_t out = 0;
            for (int ms = 0; ms < 1000; ++ms)
            {
                EnqueueAt(t, MilliSeconds(ms), 1, Ipv4Header::ECN_ECT1);
                EnqueueAt(t, MilliSeconds(ms), 1, Ipv4Header::ECN_ECT0);
                EnqueueAt(t, MilliSeconds(ms), 1, Ipv4Header::ECN_NotECT);
                for (int k = 0; k < 2; ++k)
                {
                    Simulator::Schedule(MicroSeconds(ms * 1000 + 500), [t, &out]() {
                        out += t->Dequeue() ? 1 : 0;
                    });
                }
            }
            Simulator::Stop(Seconds(1));
            Simulator::Run();
            NS_TEST_EXPECT_MSG_GT(t->GetStats().nTotalMarkedPackets, 0, name + " marks");
            NS_TEST_EXPECT_MSG_EQ(t->GetTeacherEpochCount(), 62, name + " acted every epoch");
            NS_TEST_EXPECT_MSG_EQ(t->GetFallbackCount(), 0, name + " no fallback");
            t->Dispose();
            Simulator::Destroy();
        }
    }
};

namespace
{

/// The record file, read back.
struct RecordFile
{
    bool ok{false};
    uint32_t version{0};
    uint32_t offset{0};
    std::string json;
    size_t recordSize{0};
    std::vector<std::vector<char>> records;

    const Q::EpochRecordHeader& Header(size_t i) const
    {
        return *reinterpret_cast<const Q::EpochRecordHeader*>(records[i].data());
    }

    const agent::Request& Request(size_t i) const
    {
        return *reinterpret_cast<const agent::Request*>(records[i].data() + 64);
    }

    const agent::Reply& AgentReply(size_t i) const
    {
        return *reinterpret_cast<const agent::Reply*>(records[i].data() + 64 +
                                                      sizeof(agent::Request));
    }

    const agent::Reply& TeacherReply(size_t i, size_t t) const
    {
        return *reinterpret_cast<const agent::Reply*>(
            records[i].data() + 64 + sizeof(agent::Request) + (1 + t) * sizeof(agent::Reply));
    }

    static RecordFile Read(const std::string& path, size_t teachers)
    {
        RecordFile f;
        std::ifstream in(path, std::ios::binary);
        char magic[8];
        if (!in.read(magic, 8) || std::memcmp(magic, "AQMLLMRC", 8) != 0)
        {
            return f;
        }
        in.read(reinterpret_cast<char*>(&f.version), 4);
        in.read(reinterpret_cast<char*>(&f.offset), 4);
        f.json.resize(f.offset - 16);
        in.read(f.json.data(), std::streamsize(f.json.size()));
        f.recordSize = 64 + sizeof(agent::Request) + (1 + teachers) * sizeof(agent::Reply);
        std::vector<char> rec(f.recordSize);
        while (in.read(rec.data(), std::streamsize(rec.size())))
        {
            f.records.push_back(rec);
        }
        f.ok = in.eof() && in.gcount() == 0;
        return f;
    }
};

std::string
TempPath(const std::string& tag)
{
    return "/tmp/aqm-llm-test-" + std::to_string(getpid()) + "-" + tag + ".rec";
}

} // namespace

/**
 * \ingroup aqm-llm-tests
 * \brief Record mode: one record per epoch with every teacher's action on the same request;
 * with a teacher acting (no agent) and with the stub agent acting (its reply logged as carried).
 */
class L4sLlmRecordTestCase : public TestCase
{
  public:
    L4sLlmRecordTestCase()
        : TestCase("Record mode writes one record per epoch with all teachers' actions")
    {
    }

  private:
    static void Traffic(Ptr<Q> q, Time stop, uint32_t* forwarded)
    {
        for (Time t = MilliSeconds(1); t < stop; t += MilliSeconds(2))
        {
            EnqueueAt(q, t, 3, Ipv4Header::ECN_ECT1);
            EnqueueAt(q, t, 2, Ipv4Header::ECN_ECT0);
            EnqueueAt(q, t, 1, Ipv4Header::ECN_NotECT);
            for (int k = 0; k < 5; ++k) // 6 in, 5 out: a growing standing queue
            {
                Simulator::Schedule(t + MilliSeconds(1), [q, forwarded]() {
                    *forwarded += q->Dequeue() ? 1 : 0;
                });
            }
        }
    }

    void CheckRecords(const RecordFile& f, size_t teachers, int32_t actor, bool agent)
    {
        NS_TEST_ASSERT_MSG_EQ(f.ok, true, "whole records");
        NS_TEST_EXPECT_MSG_EQ(f.version, 1, "format version");
        NS_TEST_EXPECT_MSG_EQ(f.offset % 64, 0, "records start at a multiple of 64");
        NS_TEST_EXPECT_MSG_NE(f.json.find("\"record_size\": " + std::to_string(f.recordSize)),
                              std::string::npos,
                              "header gives the record size");
        NS_TEST_EXPECT_MSG_NE(f.json.find("\"teachers\": [\"dualpi2\", \"pie-step\""),
                              std::string::npos,
                              "header lists the teachers");
        NS_TEST_ASSERT_MSG_EQ(f.records.size(), 10, "one record per epoch");
        uint32_t described = 0;
        for (size_t i = 0; i < f.records.size(); ++i)
        {
            const auto& h = f.Header(i);
            const auto& r = f.Request(i);
            NS_TEST_EXPECT_MSG_EQ(h.epoch, i, "epoch");
            NS_TEST_EXPECT_MSG_EQ(r.header.epoch, i, "request epoch");
            NS_TEST_EXPECT_MSG_EQ(h.simTimeNs, int64_t(i + 1) * kIntervalNs, "time");
            NS_TEST_EXPECT_MSG_EQ(h.actor, actor, "actor");
            NS_TEST_EXPECT_MSG_EQ(h.teacherCount, teachers, "teacher count");
            NS_TEST_EXPECT_MSG_EQ(r.header.seq, agent ? i + 1 : 0, "seq as carried");
            std::string why;
            NS_TEST_EXPECT_MSG_EQ(AgentChannel::ValidateRequest(r, &why), true, why);
            described += r.packet_count;
            for (size_t t = 0; t < teachers; ++t)
            {
                const auto& rep = f.TeacherReply(i, t);
                NS_TEST_EXPECT_MSG_EQ(AgentChannel::ValidateReply(rep, &r, &why), true, why);
                NS_TEST_EXPECT_MSG_EQ(rep.action_count, r.packet_count, "an action per packet");
                NS_TEST_EXPECT_MSG_EQ(rep.seq, r.header.seq, "teacher echoes seq");
            }
            if (agent)
            {
                const auto& rep = f.AgentReply(i);
                NS_TEST_EXPECT_MSG_EQ(h.agentOutcome, Q::OUTCOME_OK, "agent ok");
                NS_TEST_EXPECT_MSG_EQ(h.flags, 2, "agent reply present");
                NS_TEST_EXPECT_MSG_EQ(rep.seq, i + 1, "reply as carried");
                NS_TEST_EXPECT_MSG_EQ(rep.p_l_mark, 0.125, "stub's marker");
                NS_TEST_EXPECT_MSG_EQ(rep.p_c_drop, 0.0625, "stub's marker");
                NS_TEST_EXPECT_MSG_EQ(AgentChannel::ValidateReply(rep, &r, &why), true, why);
            }
            else
            {
                NS_TEST_EXPECT_MSG_EQ(h.agentOutcome, Q::OUTCOME_NO_AGENT, "no agent");
                NS_TEST_EXPECT_MSG_EQ(h.flags, 0, "no agent reply");
            }
        }
        NS_TEST_EXPECT_MSG_GT(described, 50, "packets were described");
    }

    void DoRun() override
    {
        const size_t teachers = AqmTeacher::DefaultSet().size();
        {
            const std::string path = TempPath("teacher");
            auto q = MakeQueue(QueueSizeUnit::BYTES,
                               {{"Mode", "Record"},
                                {"RecordActor", "Teacher"},
                                {"Teacher", "pie-step"},
                                {"RecordPath", path}});
            uint32_t forwarded = 0;
            Traffic(q, MilliSeconds(160), &forwarded);
            Simulator::Stop(MilliSeconds(161));
            Simulator::Run();
            NS_TEST_EXPECT_MSG_EQ(q->GetTeacherEpochCount(), 10, "the teacher acted");
            NS_TEST_EXPECT_MSG_EQ(q->GetFallbackCount(), 0, "no fallback");
            NS_TEST_EXPECT_MSG_EQ(q->GetTeacherNames().size(), teachers, "default set");
            q->Dispose();
            Simulator::Destroy();
            CheckRecords(RecordFile::Read(path, teachers), teachers, 1 /* pie-step */, false);
            std::remove(path.c_str());
        }
        {
            const std::string path = TempPath("agent");
            StubAgent stub(Policy::MARKER);
            NS_TEST_ASSERT_MSG_EQ(stub.Ready(), true, "stub agent ready");
            auto q = MakeQueue(QueueSizeUnit::PACKETS,
                               {{"Mode", "Record"},
                                {"ChannelName", stub.Name()},
                                {"AgentTimeout", "5s"},
                                {"RecordPath", path}});
            uint32_t forwarded = 0;
            Traffic(q, MilliSeconds(160), &forwarded);
            Simulator::Stop(MilliSeconds(161));
            Simulator::Run();
            NS_TEST_EXPECT_MSG_EQ(q->GetAgentEpochCount(), 10, "the agent acted");
            q->Dispose();
            NS_TEST_EXPECT_MSG_EQ(stub.Join(), 0, "agent exited");
            Simulator::Destroy();
            CheckRecords(RecordFile::Read(path, teachers), teachers, Q::ACTOR_AGENT, true);
            std::remove(path.c_str());
        }
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief The registry maps the common options onto the attributes.
 */
class L4sLlmRegistryTestCase : public TestCase
{
  public:
    L4sLlmRegistryTestCase()
        : TestCase("Registry options reach the attributes")
    {
    }

  private:
    void DoRun() override
    {
        auto q = CreateObject<Q>();
        AqmQueueDiscOptions o;
        o.agentChannel = "/aqm-llm-1-x";
        o.decisionInterval = MilliSeconds(8);
        o.decisionDelay = MilliSeconds(2);
        o.agentTimeout = MilliSeconds(500);
        o.llmMode = "record";
        o.teacher = "codel-like@2";
        o.recordActor = "teacher";
        o.recordPath = "/tmp/x.rec";
        o.llmLAgentDrop = "mark";
        o.llmAgentForward = "draw";
        AqmQueueDiscRegistry::Configure(q, "l4s-llm", o);
        StringValue s;
        TimeValue t;
        q->GetAttribute("ChannelName", s);
        NS_TEST_EXPECT_MSG_EQ(s.Get(), "/aqm-llm-1-x", "channel");
        q->GetAttribute("DecisionInterval", t);
        NS_TEST_EXPECT_MSG_EQ(t.Get(), MilliSeconds(8), "interval");
        q->GetAttribute("DecisionDelay", t);
        NS_TEST_EXPECT_MSG_EQ(t.Get(), MilliSeconds(2), "delay");
        q->GetAttribute("AgentTimeout", t);
        NS_TEST_EXPECT_MSG_EQ(t.Get(), MilliSeconds(500), "timeout");
        EnumValue<Q::Mode> mode;
        q->GetAttribute("Mode", mode);
        NS_TEST_EXPECT_MSG_EQ(mode.Get(), Q::MODE_RECORD, "mode");
        EnumValue<Q::RecordActor> actor;
        q->GetAttribute("RecordActor", actor);
        NS_TEST_EXPECT_MSG_EQ(actor.Get(), Q::RECORD_ACTOR_TEACHER, "record actor");
        q->GetAttribute("Teacher", s);
        NS_TEST_EXPECT_MSG_EQ(s.Get(), "codel-like@2", "teacher");
        q->GetAttribute("RecordPath", s);
        NS_TEST_EXPECT_MSG_EQ(s.Get(), "/tmp/x.rec", "record path");
        EnumValue<Q::AgentLDropRule> lDrop;
        q->GetAttribute("AgentLDrop", lDrop);
        NS_TEST_EXPECT_MSG_EQ(lDrop.Get(), Q::AGENT_L_DROP_MARK, "agent L drop rule");
        EnumValue<Q::AgentForwardRule> forward;
        q->GetAttribute("AgentForward", forward);
        NS_TEST_EXPECT_MSG_EQ(forward.Get(), Q::AGENT_FORWARD_DRAW, "agent forward rule");
        std::string error;
        const bool scaled = AqmTeacher::Create("pie-step@0.25") != nullptr;
        const bool unknown = AqmTeacher::Create("pie@2", &error) == nullptr;
        const bool zero = AqmTeacher::Create("dualpi2@0", &error) == nullptr;
        NS_TEST_EXPECT_MSG_EQ(scaled, true, "scaled");
        NS_TEST_EXPECT_MSG_EQ(unknown, true, "unknown");
        NS_TEST_EXPECT_MSG_EQ(zero, true, "scale 0");
        q->Dispose();
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief The L4sLlmQueueDisc test suite.
 */
class L4sLlmQueueDiscTestSuite : public TestSuite
{
  public:
    L4sLlmQueueDiscTestSuite()
        : TestSuite("l4s-llm-queue-disc", Type::UNIT)
    {
        for (auto unit : {QueueSizeUnit::PACKETS, QueueSizeUnit::BYTES})
        {
            AddTestCase(new L4sLlmClassifyTestCase(unit), Duration::QUICK);
            AddTestCase(new L4sLlmStubAgentTestCase(unit), Duration::QUICK);
            AddTestCase(new L4sLlmAgentDropTestCase(unit, false, false), Duration::QUICK);
            AddTestCase(new L4sLlmAgentDropTestCase(unit, false, true), Duration::QUICK);
            AddTestCase(new L4sLlmAgentDropTestCase(unit, true, false), Duration::QUICK);
            AddTestCase(new L4sLlmAgentDropTestCase(unit, true, true), Duration::QUICK);
            AddTestCase(new L4sLlmAgentForwardTestCase(unit, false), Duration::QUICK);
            AddTestCase(new L4sLlmAgentForwardTestCase(unit, true), Duration::QUICK);
            AddTestCase(new L4sLlmAgentForwardDrawTestCase(unit), Duration::QUICK);
            for (bool controller : {false, true})
            {
                for (bool saturated : {false, true})
                {
                    AddTestCase(new L4sLlmClassicDeciderTestCase(unit, controller, saturated),
                                Duration::QUICK);
                }
            }
            AddTestCase(new L4sLlmDecisionDelayTestCase(unit, true), Duration::QUICK);
            AddTestCase(new L4sLlmDecisionDelayTestCase(unit, false), Duration::QUICK);
            AddTestCase(new L4sLlmOverloadRuleTestCase(unit, false, Policy::EPOCH_NONE),
                        Duration::QUICK);
            AddTestCase(new L4sLlmOverloadRuleTestCase(unit, true, Policy::EPOCH_NONE),
                        Duration::QUICK);
            AddTestCase(new L4sLlmOverloadRuleTestCase(unit, true, Policy::EPOCH_ALL),
                        Duration::QUICK);
            for (bool agent : {true, false})
            {
                AddTestCase(new L4sLlmSojournLimitTestCase(unit, true, agent), Duration::QUICK);
            }
            AddTestCase(new L4sLlmSojournLimitTestCase(unit, false, true), Duration::QUICK);
        }
        AddTestCase(new L4sLlmAgentFailureTestCase(), Duration::QUICK);
        AddTestCase(new L4sLlmTeacherModeTestCase(), Duration::QUICK);
        AddTestCase(new L4sLlmRecordTestCase(), Duration::QUICK);
        AddTestCase(new L4sLlmRegistryTestCase(), Duration::QUICK);
    }
};

static L4sLlmQueueDiscTestSuite g_l4sLlmQueueDiscTestSuite; //!< the suite
