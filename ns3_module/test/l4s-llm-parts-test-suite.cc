/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
// suite: l4s-llm-parts
// The parts of L4sLlmQueueDisc, each alone: DualPI2's per-packet rule, the request builder, the
// record writer, the decision schedule, the teacher set and the agent client without an agent.
#include "ns3/agent-client.h"
#include "ns3/decision-schedule.h"
#include "ns3/dual-pi2-controller.h"
#include "ns3/epoch-record-writer.h"
#include "ns3/epoch-request-builder.h"
#include "ns3/random-variable-stream.h"
#include "ns3/simulator.h"
#include "ns3/teacher-set.h"
#include "ns3/test.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace ns3;

namespace
{

using Rule = DualPi2Controller::PacketRule;
using Kind = DualPi2Controller::DrawKind;

/// A draw stub: answers \p answer and remembers what it was asked.
struct DrawStub
{
    bool answer{true};       //!< the answer to every draw
    std::vector<Kind> kinds; //!< kinds asked, in order
    std::vector<double> ps;  //!< probabilities asked, in order

    /// \param p probability \param kind which decision \return answer
    bool operator()(double p, Kind kind)
    {
        kinds.push_back(kind);
        ps.push_back(p);
        return answer;
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief DualPi2Controller::DecidePacket: every verdict of RFC 9332's rule, the probability
 * each draw is made with, and no draw where the rule has none.
 */
class DecidePacketTestCase : public TestCase
{
  public:
    DecidePacketTestCase()
        : TestCase("DualPI2's per-packet rule: verdicts, reasons and draws")
    {
    }

  private:
    void DoRun() override
    {
        DualPi2Controller c; // k = 2
        c.SetProbBase(0.2);  // p_CL = 0.4, p_C = 0.04
        DrawStub yes;
        double pL = -1;
        NS_TEST_EXPECT_MSG_EQ(int(c.DecidePacket(true, false, true, 0.5, true, yes, &pL)),
                              int(Rule::NATIVE_MARK), "native p'_L 0.5 >= p_CL 0.4");
        NS_TEST_EXPECT_MSG_EQ_TOL(pL, 0.5, 1e-12, "p_L = max(p'_L, p_CL)");
        NS_TEST_EXPECT_MSG_EQ(int(c.DecidePacket(true, false, true, 0.1, true, yes, &pL)),
                              int(Rule::COUPLED_MARK), "coupled p_CL 0.4 > p'_L 0.1");
        NS_TEST_EXPECT_MSG_EQ_TOL(pL, 0.4, 1e-12, "p_L = p_CL");
        NS_TEST_EXPECT_MSG_EQ(yes.kinds.size(), 2, "one draw per L packet");
        NS_TEST_EXPECT_MSG_EQ(int(yes.kinds[1]), int(Kind::L_MARK), "the L marking draw");
        DrawStub no{false};
        NS_TEST_EXPECT_MSG_EQ(int(c.DecidePacket(true, false, true, 0.1, true, no)),
                              int(Rule::FORWARD), "no mark drawn");

        // Classic: drop unless ECT(0) with ECN on.
        DrawStub c1;
        NS_TEST_EXPECT_MSG_EQ(int(c.DecidePacket(false, true, true, 0.0, true, c1)),
                              int(Rule::CLASSIC_MARK), "ECT(0), ECN on: mark");
        NS_TEST_EXPECT_MSG_EQ_TOL(c1.ps[0], 0.04, 1e-12, "drawn with p_C = p'^2");
        NS_TEST_EXPECT_MSG_EQ(int(c1.kinds[0]), int(Kind::C_SIGNAL), "the C draw");
        NS_TEST_EXPECT_MSG_EQ(int(c.DecidePacket(false, true, false, 0.0, true, c1)),
                              int(Rule::CLASSIC_DROP), "ECT(0), ECN off: drop");
        NS_TEST_EXPECT_MSG_EQ(int(c.DecidePacket(false, false, true, 0.0, true, c1)),
                              int(Rule::CLASSIC_DROP), "Not-ECT: drop");
        NS_TEST_EXPECT_MSG_EQ(int(c.DecidePacket(false, true, true, 0.0, true, no)),
                              int(Rule::FORWARD), "no signal drawn");

        // Overload: k p' >= 1 saturates L, p_C >= 1/k^2 overloads C.
        c.SetProbBase(0.6); // p_C = 0.36 >= 0.25
        DrawStub sat;
        NS_TEST_EXPECT_MSG_EQ(int(c.DecidePacket(true, false, true, 0.0, true, sat, &pL)),
                              int(Rule::OVERLOAD_L_DROP), "saturated L dropped with p_C");
        NS_TEST_EXPECT_MSG_EQ(int(sat.kinds[0]), int(Kind::L_OVERLOAD_DROP), "overload draw");
        NS_TEST_EXPECT_MSG_EQ_TOL(sat.ps[0], 0.36, 1e-12, "with p_C");
        NS_TEST_EXPECT_MSG_EQ(pL, 1.0, "p_L = 1 while saturated");
        NS_TEST_EXPECT_MSG_EQ(int(c.DecidePacket(true, false, true, 0.0, true, no)),
                              int(Rule::OVERLOAD_L_MARK), "not dropped: marked, no mark draw");
        DrawStub never;
        NS_TEST_EXPECT_MSG_EQ(int(c.DecidePacket(true, false, true, 0.0, false, never)),
                              int(Rule::OVERLOAD_L_MARK), "without drop on overload: marked");
        NS_TEST_EXPECT_MSG_EQ(never.kinds.size(), 0, "and nothing drawn");
        NS_TEST_EXPECT_MSG_EQ(int(c.DecidePacket(false, true, true, 0.0, true, yes)),
                              int(Rule::OVERLOAD_CLASSIC_DROP), "overloaded ECT(0) dropped");

        NS_TEST_EXPECT_MSG_EQ(DualPi2Controller::IsDrop(Rule::OVERLOAD_CLASSIC_DROP), true, "drop");
        NS_TEST_EXPECT_MSG_EQ(DualPi2Controller::IsMark(Rule::OVERLOAD_L_MARK), true, "mark");
        NS_TEST_EXPECT_MSG_EQ(DualPi2Controller::IsDrop(Rule::FORWARD) ||
                                  DualPi2Controller::IsMark(Rule::FORWARD),
                              false, "forward is neither");
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief EpochRequestBuilder: one interval's events become the newest column of the window,
 * the capacity estimate, the rewards and the burst allowance.
 */
class RequestBuilderTestCase : public TestCase
{
  public:
    RequestBuilderTestCase()
        : TestCase("Request builder: series, capacity estimate, rewards, burst allowance")
    {
    }

  private:
    /// One interval: 10 arrivals of 1500 B, 8 departures, 1 mark, 2 drops, 2 L and 1 C sojourns.
    static void Interval(EpochRequestBuilder& b)
    {
        for (int i = 0; i < 10; ++i)
        {
            b.OnArrival(1500);
        }
        for (int i = 0; i < 8; ++i)
        {
            b.OnDeparture(1500);
        }
        b.OnMark();
        b.OnDrop();
        b.OnDrop();
        b.OnSojourn(true, MilliSeconds(1));
        b.OnSojourn(true, MilliSeconds(3));
        b.OnSojourn(false, MilliSeconds(10));
    }

    void DoRun() override
    {
        const uint32_t last = agent::kWindow - 1;
        EpochRequestBuilder b;
        b.Reset(10e6, MilliSeconds(150), false);
        Interval(b);
        b.CloseInterval(MilliSeconds(16), MilliSeconds(2), MilliSeconds(5), 3000, false);
        agent::Request r;
        b.Fill(r, 7, MilliSeconds(16), 0.1, 0.2, 0.01);
        NS_TEST_EXPECT_MSG_EQ(r.header.epoch, 7, "epoch");
        NS_TEST_EXPECT_MSG_EQ(r.packet_count, 0, "packets are the caller's");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.series[agent::kSeriesArrivalRate][last], 7.5e6, 1, "arrivals");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.series[agent::kSeriesDepartureRate][last], 6e6, 1, "departures");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.series[agent::kSeriesCapacity][last], 6e6, 1,
                                  "backlogged all interval: capacity = departure rate");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.series[agent::kSeriesCapacity][0], 10e6, 1,
                                  "older columns: the initial estimate");
        NS_TEST_EXPECT_MSG_EQ(r.series[agent::kSeriesMarks][last], 1, "marks");
        NS_TEST_EXPECT_MSG_EQ(r.series[agent::kSeriesDrops][last], 2, "drops");
        NS_TEST_EXPECT_MSG_EQ(r.series[agent::kSeriesQueueBytes][last], 3000, "queue bytes");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.series[agent::kSeriesLSojourn][last], 0.002, 1e-12, "L head");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.rewards[agent::kRewardUtilization], 1.0, 1e-12, "util");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.rewards[agent::kRewardLDelay], 0.002, 1e-12, "mean L");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.rewards[agent::kRewardCDelay], 0.010, 1e-12, "mean C");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.rewards[agent::kRewardLoss], 0.2, 1e-12, "2 of 10 lost");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.scalars[agent::kScalarPPrime], 0.1, 1e-12, "p'");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.scalars[agent::kScalarBurstAllowance], 0.150, 1e-12,
                                  "burst allowance");

        // An idle interval: the estimate keeps the larger value; counts start over.
        b.OnIdle();
        b.OnDeparture(1500);
        b.CloseInterval(MilliSeconds(16), Time(0), Time(0), 0, true);
        b.Fill(r, 8, MilliSeconds(32), 0.0, 0.0, 0.0);
        NS_TEST_EXPECT_MSG_EQ_TOL(r.series[agent::kSeriesCapacity][last], 6e6, 1, "kept");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.series[agent::kSeriesDepartureRate][last - 1], 6e6, 1,
                                  "the window shifted by one");
        NS_TEST_EXPECT_MSG_EQ(r.series[agent::kSeriesDrops][last], 0, "counts start over");
        NS_TEST_EXPECT_MSG_EQ_TOL(r.rewards[agent::kRewardUtilization], 0.125, 1e-12,
                                  "0.75 Mb/s of 6");

        // RFC 8033's burst allowance: runs down, restored after two quiet epochs at p' = 0.
        b.UpdateBurstAllowance(MilliSeconds(16), 0.1, MilliSeconds(20), MilliSeconds(15),
                               MilliSeconds(150));
        b.Fill(r, 9, MilliSeconds(48), 0.1, 0, 0);
        NS_TEST_EXPECT_MSG_EQ_TOL(r.scalars[agent::kScalarBurstAllowance], 0.134, 1e-12, "down");
        b.UpdateBurstAllowance(MilliSeconds(16), 0.0, MilliSeconds(1), MilliSeconds(15),
                               MilliSeconds(150));
        b.Fill(r, 10, MilliSeconds(64), 0, 0, 0);
        NS_TEST_EXPECT_MSG_EQ_TOL(r.scalars[agent::kScalarBurstAllowance], 0.118, 1e-12,
                                  "one quiet epoch is not enough");
        b.UpdateBurstAllowance(MilliSeconds(16), 0.0, MilliSeconds(1), MilliSeconds(15),
                               MilliSeconds(150));
        b.Fill(r, 11, MilliSeconds(80), 0, 0, 0);
        NS_TEST_EXPECT_MSG_EQ_TOL(r.scalars[agent::kScalarBurstAllowance], 0.150, 1e-12,
                                  "restored");
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief EpochRecordWriter: the file header (magic, version, offset, layout JSON) and
 * fixed-size records that hold what was written.
 */
class RecordWriterTestCase : public TestCase
{
  public:
    RecordWriterTestCase()
        : TestCase("Record writer: header and records")
    {
    }

  private:
    void DoRun() override
    {
        const std::string path = CreateTempDirFilename("parts-record.bin");
        EpochRecordWriter w;
        EpochRecordWriter::RunInfo info;
        info.teachers = {"dualpi2", "pie-step"};
        info.acting = "teacher:pie-step";
        info.actingTeacherIndex = 1;
        info.outcomeNames = {"not_consulted", "ok"};
        w.Open(path, info);
        agent::Request request;
        std::memset(&request, 0, sizeof(request));
        std::vector<agent::Reply> replies(2);
        std::memset(replies.data(), 0, replies.size() * sizeof(agent::Reply));
        replies[1].p_c_drop = 0.25;
        for (uint64_t e = 0; e < 3; ++e)
        {
            EpochRecordWriter::Header h{};
            h.epoch = e;
            h.actor = 1;
            h.teacherCount = 2;
            request.header.epoch = e;
            w.Write(h, request, nullptr, replies);
        }
        w.Close();

        std::ifstream in(path, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), {});
        NS_TEST_ASSERT_MSG_EQ(bytes.substr(0, 8), "AQMLLMRC", "magic");
        uint32_t version = 0;
        uint32_t offset = 0;
        std::memcpy(&version, bytes.data() + 8, 4);
        std::memcpy(&offset, bytes.data() + 12, 4);
        NS_TEST_EXPECT_MSG_EQ(version, 1, "format version");
        NS_TEST_EXPECT_MSG_EQ(offset % 64, 0, "records start on a 64-byte boundary");
        const std::string json = bytes.substr(16, offset - 16);
        NS_TEST_EXPECT_MSG_NE(json.find("\"teachers\": [\"dualpi2\", \"pie-step\"]"),
                              std::string::npos, "teachers in order");
        NS_TEST_EXPECT_MSG_NE(json.find("\"series\": [\"l_sojourn_s\""), std::string::npos,
                              "series names");
        const size_t record = 64 + sizeof(agent::Request) + 3 * sizeof(agent::Reply);
        NS_TEST_ASSERT_MSG_EQ(bytes.size(), offset + 3 * record, "three records");
        EpochRecordWriter::Header h{};
        std::memcpy(&h, bytes.data() + offset + 2 * record, sizeof(h));
        NS_TEST_EXPECT_MSG_EQ(h.epoch, 2, "third record's epoch");
        agent::Reply second{};
        std::memcpy(&second,
                    bytes.data() + offset + 2 * record + 64 + sizeof(agent::Request) +
                        2 * sizeof(agent::Reply),
                    sizeof(second));
        NS_TEST_EXPECT_MSG_EQ(second.p_c_drop, 0.25, "second teacher's reply");
        std::remove(path.c_str());
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief DecisionSchedule: a decision takes effect after its delay, in epoch order, and the
 * previous one stays in force until then.
 */
class DecisionScheduleTestCase : public TestCase
{
  public:
    DecisionScheduleTestCase()
        : TestCase("Decision schedule: delay and order")
    {
    }

  private:
    DecisionSchedule m_schedule;    //!< under test
    std::vector<int32_t> m_seen;    //!< actor in force at each probe

    /// Note the actor in force.
    void Probe()
    {
        m_seen.push_back(m_schedule.GetCurrent().actor);
    }

    /// Install a decision of \p actor with \p delay.
    void Install(int32_t actor, Time delay)
    {
        EpochDecision d;
        d.actor = actor;
        m_schedule.Install(d, delay);
    }

    void DoRun() override
    {
        m_schedule.Reset();
        NS_TEST_EXPECT_MSG_EQ(m_schedule.GetCurrent().actor, EpochDecision::ACTOR_FALLBACK,
                              "the fallback before any decision");
        Install(3, Time(0));
        NS_TEST_EXPECT_MSG_EQ(m_schedule.GetCurrent().actor, 3, "no delay: at once");
        Simulator::Schedule(MilliSeconds(1), &DecisionScheduleTestCase::Install, this, 0,
                            MilliSeconds(10));
        Simulator::Schedule(MilliSeconds(5), &DecisionScheduleTestCase::Install, this, 1,
                            MilliSeconds(10));
        for (int t : {10, 12, 20})
        {
            Simulator::Schedule(MilliSeconds(t), &DecisionScheduleTestCase::Probe, this);
        }
        Simulator::Run();
        Simulator::Destroy();
        NS_TEST_ASSERT_MSG_EQ(m_seen.size(), 3, "probes");
        NS_TEST_EXPECT_MSG_EQ(m_seen[0], 3, "before 11 ms the earlier decision holds");
        NS_TEST_EXPECT_MSG_EQ(m_seen[1], 0, "from 11 ms the first delayed one");
        NS_TEST_EXPECT_MSG_EQ(m_seen[2], 1, "from 15 ms the second");

        agent::Reply reply{};
        reply.action_count = 2;
        reply.actions[0].uid = 41;
        reply.actions[0].action = agent::kActionDrop;
        reply.actions[1].uid = 42;
        reply.actions[1].action = agent::kActionMark;
        reply.p_l_mark = 0.5;
        const EpochDecision d = EpochDecision::FromReply(EpochDecision::ACTOR_AGENT, 9, reply);
        NS_TEST_EXPECT_MSG_EQ(int(d.FindAction(42).value_or(99)), int(agent::kActionMark),
                              "per-packet action by id");
        NS_TEST_EXPECT_MSG_EQ(d.FindAction(43).has_value(), false, "not covered");
        NS_TEST_EXPECT_MSG_EQ(d.pLMark, 0.5, "epoch probability");
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief TeacherSet: the acting teacher joins the shadow list, unknown names are refused,
 * exploration replaces actions only when asked.
 */
class TeacherSetTestCase : public TestCase
{
  public:
    TeacherSetTestCase()
        : TestCase("Teacher set: acting teacher, names, exploration")
    {
    }

  private:
    void DoRun() override
    {
        std::string error;
        NS_TEST_EXPECT_MSG_EQ(TeacherSet::Check("nope", {}, &error), false, "unknown name");
        NS_TEST_EXPECT_MSG_NE(error.find("Teacher: unknown teacher 'nope'"), std::string::npos,
                              "the error names it");
        NS_TEST_EXPECT_MSG_EQ(TeacherSet::Check("", {"dualpi2", "bad@x"}, &error), false,
                              "bad shadow name");
        NS_TEST_EXPECT_MSG_NE(error.find("Teachers: "), std::string::npos, "says which list");

        TeacherSet set;
        set.Configure({"dualpi2", "pie-step"}, "codel-like");
        NS_TEST_EXPECT_MSG_EQ(set.GetSize(), 3, "acting teacher appended");
        NS_TEST_EXPECT_MSG_EQ(set.GetActingIndex(), 2, "its index");
        NS_TEST_EXPECT_MSG_EQ(set.GetActingLabel(), "teacher:codel-like", "label");
        set.Configure({"dualpi2", "pie-step"}, "pie-step");
        NS_TEST_EXPECT_MSG_EQ(set.GetSize(), 2, "already listed");
        NS_TEST_EXPECT_MSG_EQ(set.GetActingIndex(), 1, "its index");

        agent::Request r;
        std::memset(&r, 0, sizeof(r));
        r.series_count = agent::kSeriesDefined;
        r.window_len = agent::kWindow;
        r.packet_count = 8;
        for (uint32_t i = 0; i < r.packet_count; ++i)
        {
            r.packets[i].uid = i + 1;
            r.packets[i].size_bytes = 1500;
            r.packets[i].traffic_class = agent::kClassC;
        }
        set.DecideAll(r, 0.016);
        Ptr<UniformRandomVariable> rv = CreateObject<UniformRandomVariable>();
        rv->SetStream(5);
        bool explored = true;
        const agent::Reply& plain = set.ActingReply(0.0, rv, explored);
        NS_TEST_EXPECT_MSG_EQ(explored, false, "epsilon 0: as decided");
        NS_TEST_EXPECT_MSG_EQ(&plain, &set.GetReplies()[1], "the acting teacher's own reply");
        const agent::Reply& all = set.ActingReply(1.0, rv, explored);
        NS_TEST_EXPECT_MSG_EQ(explored, true, "epsilon 1: every action drawn");
        uint32_t changed = 0;
        for (uint32_t i = 0; i < all.action_count; ++i)
        {
            NS_TEST_EXPECT_MSG_LT(uint32_t(all.actions[i].action), agent::kActionCount, "range");
            changed += all.actions[i].action != agent::kActionForward ? 1 : 0;
        }
        NS_TEST_EXPECT_MSG_GT(changed, 0, "a quiet queue's forwards were replaced");
        NS_TEST_EXPECT_MSG_EQ(all.action_count, 8, "one action per packet");
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief AgentClient without an agent: every call answers "no agent" at once and is counted.
 */
class AgentClientNoAgentTestCase : public TestCase
{
  public:
    AgentClientNoAgentTestCase()
        : TestCase("Agent client without a channel")
    {
    }

  private:
    void DoRun() override
    {
        AgentClient client;
        AgentClient::Options options;
        options.agentActs = false; // in shadow: no warning on stderr
        client.Attach("", options);
        agent::Request r;
        std::memset(&r, 0, sizeof(r));
        agent::Reply reply;
        double latency = 1;
        for (int i = 0; i < 3; ++i)
        {
            const auto outcome = client.Call(r, reply, latency);
            NS_TEST_EXPECT_MSG_EQ(int(outcome), int(AgentClient::OUTCOME_NO_AGENT), "no agent");
            client.Count(outcome);
        }
        NS_TEST_EXPECT_MSG_EQ(latency, 0, "no call made");
        NS_TEST_EXPECT_MSG_EQ(client.GetCount(AgentClient::OUTCOME_NO_AGENT), 3, "counted");
        NS_TEST_EXPECT_MSG_EQ(client.GetCountsJson(), "{\"no_agent\": 3}", "counts");
        NS_TEST_EXPECT_MSG_EQ(client.GetLatencyJson(), "null", "no latency");
        NS_TEST_EXPECT_MSG_NE(client.GetFailureSummary().find("no agent 3"), std::string::npos,
                              "summary");
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief The parts of the LLM queue disc, each tested alone.
 */
class L4sLlmPartsTestSuite : public TestSuite
{
  public:
    L4sLlmPartsTestSuite()
        : TestSuite("l4s-llm-parts", Type::UNIT)
    {
        AddTestCase(new DecidePacketTestCase(), Duration::QUICK);
        AddTestCase(new RequestBuilderTestCase(), Duration::QUICK);
        AddTestCase(new RecordWriterTestCase(), Duration::QUICK);
        AddTestCase(new DecisionScheduleTestCase(), Duration::QUICK);
        AddTestCase(new TeacherSetTestCase(), Duration::QUICK);
        AddTestCase(new AgentClientNoAgentTestCase(), Duration::QUICK);
    }
};

static L4sLlmPartsTestSuite g_l4sLlmPartsTestSuite; //!< static instance

} // namespace
