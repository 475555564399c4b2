/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
// suite: aqm-teachers
#include "ns3/aqm-teachers.h"
#include "ns3/test.h"

#include <cstring>
#include <string>
#include <vector>

using namespace ns3;

namespace
{

constexpr uint8_t kEct1 = 0x01; //!< ECT(1): L4S
constexpr uint8_t kNotEct = 0x00;

/// One described packet of a test request.
struct Pkt
{
    uint8_t cls;     //!< agent::kClassL or kClassC
    double sojournS; //!< head-of-queue sojourn at the epoch
    uint8_t ecn;     //!< codepoint
};

/// A request at \p epoch (time \p epoch x 16 ms) with \p pkts and the series' last values.
agent::Request
MakeRequest(uint64_t epoch, const std::vector<Pkt>& pkts, double cSojournS = 0.0, double lSojournS = 0.0)
{
    agent::Request r;
    std::memset(&r, 0, sizeof(r));
    r.header.seq = epoch + 1;
    r.header.epoch = epoch;
    r.header.sim_time_ns = int64_t(epoch) * 16000000;
    r.series_count = agent::kSeriesDefined;
    r.window_len = agent::kWindow;
    r.series[agent::kSeriesCSojourn][agent::kWindow - 1] = cSojournS;
    r.series[agent::kSeriesLSojourn][agent::kWindow - 1] = lSojournS;
    r.series[agent::kSeriesQueueBytes][agent::kWindow - 1] = 1500.0 * pkts.size();
    r.packet_count = uint32_t(pkts.size());
    for (uint32_t i = 0; i < r.packet_count; ++i)
    {
        r.packets[i].uid = 100 * epoch + i;
        r.packets[i].sojourn_s = pkts[i].sojournS;
        r.packets[i].size_bytes = 1500;
        r.packets[i].traffic_class = pkts[i].cls;
        r.packets[i].ecn = pkts[i].ecn;
    }
    return r;
}

/// Count of \p action among the reply's actions for packets of class \p cls.
uint32_t
Count(const agent::Request& req, const agent::Reply& rep, uint8_t cls, uint8_t action)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < rep.action_count; ++i)
    {
        n += req.packets[i].traffic_class == cls && rep.actions[i].action == action ? 1 : 0;
    }
    return n;
}

std::vector<Pkt>
Repeat(uint32_t n, Pkt p)
{
    return std::vector<Pkt>(n, p);
}

} // namespace

/**
 * \ingroup aqm-llm-tests
 * \brief Names: the default set (3 base teachers x scales 1, 0.5, 2), NAME@SCALE, list parsing,
 * and an unknown name refused with the allowed ones.
 */
class AqmTeachersNamesTestCase : public TestCase
{
  public:
    AqmTeachersNamesTestCase()
        : TestCase("Teacher names, scales and the default set")
    {
    }

  private:
    void DoRun() override
    {
        const auto set = AqmTeacher::DefaultSet();
        NS_TEST_ASSERT_MSG_EQ(set.size(), 9, "three teachers at three scales");
        for (const auto& name : set)
        {
            auto t = AqmTeacher::Create(name);
            NS_TEST_ASSERT_MSG_NE(t.get(), nullptr, name);
            NS_TEST_EXPECT_MSG_EQ(t->GetName(), name, "name kept");
            const double scale = name.find("@0.5") != std::string::npos ? 0.5
                                 : name.find("@2") != std::string::npos ? 2.0
                                                                         : 1.0;
            NS_TEST_EXPECT_MSG_EQ(t->GetScale(), scale, name);
        }
        std::string error;
        NS_TEST_EXPECT_MSG_EQ(AqmTeacher::Create("nosuch", &error).get(), nullptr, "unknown name");
        NS_TEST_EXPECT_MSG_NE(error.find("dualpi2"), std::string::npos, "the error names the allowed ones");
        const auto list = AqmTeacher::ParseList(" dualpi2, ,pie-step@2 ");
        NS_TEST_ASSERT_MSG_EQ(list.size(), 2, "empty items skipped");
        NS_TEST_EXPECT_MSG_EQ(list[1], "pie-step@2", "spaces ignored");
    }
};

/**
 * \brief A quiet queue (every sojourn below every target, empty series): every teacher of the
 * default set forwards every packet with zero probabilities and echoes seq and uids.
 */
class AqmTeachersQuietTestCase : public TestCase
{
  public:
    AqmTeachersQuietTestCase()
        : TestCase("Quiet queue: every teacher forwards everything, probabilities 0")
    {
    }

  private:
    void DoRun() override
    {
        std::vector<Pkt> pkts = Repeat(4, {agent::kClassL, 0.0001, kEct1});
        const auto c = Repeat(4, {agent::kClassC, 0.0005, kNotEct});
        pkts.insert(pkts.end(), c.begin(), c.end());
        const agent::Request req = MakeRequest(0, pkts);
        for (const auto& name : AqmTeacher::DefaultSet())
        {
            auto t = AqmTeacher::Create(name);
            agent::Reply rep;
            t->Decide(req, 0.016, rep);
            NS_TEST_EXPECT_MSG_EQ(rep.seq, req.header.seq, name + ": seq echoed");
            NS_TEST_EXPECT_MSG_EQ(rep.action_count, 8, name + ": one action per packet");
            NS_TEST_EXPECT_MSG_EQ(rep.actions[5].uid, req.packets[5].uid, name + ": uids copied");
            NS_TEST_EXPECT_MSG_EQ(Count(req, rep, agent::kClassL, agent::kActionForward), 4, name);
            NS_TEST_EXPECT_MSG_EQ(Count(req, rep, agent::kClassC, agent::kActionForward), 4, name);
            NS_TEST_EXPECT_MSG_EQ(rep.p_l_mark, 0.0, name + ": p_L");
            NS_TEST_EXPECT_MSG_EQ(rep.p_c_drop + rep.p_c_mark, 0.0, name + ": p_C");
        }
    }
};

/**
 * \brief The L thresholds scale with the teacher: six L packets that waited 1.5 ms are all marked
 * by dualpi2 (ramp 0.8-1.2 ms) and dualpi2@0.5 (0.4-0.6 ms) and none by dualpi2@2 (1.6-2.4 ms);
 * likewise for pie-step's 1 ms step (0.5 ms, 2 ms). p_L follows the head packet.
 */
class AqmTeachersLStepTestCase : public TestCase
{
  public:
    AqmTeachersLStepTestCase()
        : TestCase("L step and ramp thresholds scale with the teacher: exact marks")
    {
    }

  private:
    void DoRun() override
    {
        const agent::Request req = MakeRequest(0, Repeat(6, {agent::kClassL, 0.0015, kEct1}));
        const std::vector<std::pair<std::string, uint32_t>> expected = {
            {"dualpi2", 6}, {"dualpi2@0.5", 6}, {"dualpi2@2", 0},
            {"pie-step", 6}, {"pie-step@0.5", 6}, {"pie-step@2", 0}};
        for (const auto& [name, marks] : expected)
        {
            auto t = AqmTeacher::Create(name);
            agent::Reply rep;
            t->Decide(req, 0.016, rep);
            NS_TEST_EXPECT_MSG_EQ(Count(req, rep, agent::kClassL, agent::kActionMark), marks, name);
            NS_TEST_EXPECT_MSG_EQ(rep.p_l_mark, marks ? 1.0 : 0.0, name + ": p_L of the head packet");
        }
    }
};

/**
 * \brief DualPI2 overload: with the classic queue at 1 s for a few epochs, p' saturates
 * (p_CL = k p' >= 1); then L packets are dropped or marked (never forwarded), classic Not-ECT
 * packets dropped or forwarded (never marked), p_L = 1, and the classic signal is a drop
 * probability p_C = p'^2 (overloaded).
 */
class AqmTeachersOverloadTestCase : public TestCase
{
  public:
    AqmTeachersOverloadTestCase()
        : TestCase("DualPI2 teacher in overload: L dropped or marked, C drops at p'^2")
    {
    }

  private:
    void DoRun() override
    {
        auto teacher = AqmTeacher::Create("dualpi2");
        auto* dualpi2 = dynamic_cast<DualPi2Teacher*>(teacher.get());
        NS_TEST_ASSERT_MSG_NE(dualpi2, nullptr, "dualpi2 is a DualPi2Teacher");
        std::vector<Pkt> pkts = Repeat(10, {agent::kClassL, 0.0001, kEct1});
        const auto c = Repeat(10, {agent::kClassC, 1.0, kNotEct});
        pkts.insert(pkts.end(), c.begin(), c.end());
        agent::Reply rep;
        uint64_t epoch = 0;
        for (; epoch < 50 && !dualpi2->GetController().IsLSaturated(); ++epoch)
        {
            dualpi2->Decide(MakeRequest(epoch, pkts, 1.0), 0.016, rep);
        }
        NS_TEST_ASSERT_MSG_EQ(dualpi2->GetController().IsLSaturated(), true, "p' saturates");
        const agent::Request req = MakeRequest(epoch, pkts, 1.0);
        dualpi2->Decide(req, 0.016, rep);
        const double pC = dualpi2->GetController().GetProbC();
        NS_TEST_EXPECT_MSG_EQ(Count(req, rep, agent::kClassL, agent::kActionForward), 0, "no L forwarded");
        NS_TEST_EXPECT_MSG_EQ(Count(req, rep, agent::kClassL, agent::kActionDrop) +
                                  Count(req, rep, agent::kClassL, agent::kActionMark),
                              10, "every L dropped or marked");
        NS_TEST_EXPECT_MSG_EQ(Count(req, rep, agent::kClassC, agent::kActionMark), 0, "Not-ECT is never marked");
        NS_TEST_EXPECT_MSG_EQ(rep.p_l_mark, 1.0, "p_L saturated");
        NS_TEST_EXPECT_MSG_EQ(rep.p_c_mark, 0.0, "overloaded: no classic marks");
        NS_TEST_EXPECT_MSG_EQ_TOL(rep.p_c_drop, pC, 1e-12, "classic drop probability p'^2");
        NS_TEST_EXPECT_MSG_GT_OR_EQ(pC, 0.25, "p_C at least p_Cmax = 1/k^2");
    }
};

/**
 * \brief CoDel-like: the L head above its 1 ms target for less than one 16 ms interval: no
 * signal; one interval later it enters the signalling state and, with one expected L packet per
 * epoch, signals every L packet above the target. At scale 2 (2 ms, 32 ms) it is still waiting.
 */
class AqmTeachersCodelTestCase : public TestCase
{
  public:
    AqmTeachersCodelTestCase()
        : TestCase("CoDel-like teacher: signalling starts one interval above target")
    {
    }

  private:
    void DoRun() override
    {
        const auto pkts = Repeat(5, {agent::kClassL, 0.005, kEct1});
        for (const auto& [name, secondEpochMarks] :
             std::vector<std::pair<std::string, uint32_t>>{{"codel-like", 5}, {"codel-like@2", 0}})
        {
            auto t = AqmTeacher::Create(name);
            agent::Reply rep;
            const agent::Request first = MakeRequest(0, pkts);
            t->Decide(first, 0.016, rep);
            NS_TEST_EXPECT_MSG_EQ(Count(first, rep, agent::kClassL, agent::kActionMark), 0,
                                  name + ": first epoch above target: no signal yet");
            const agent::Request second = MakeRequest(1, pkts);
            t->Decide(second, 0.016, rep);
            NS_TEST_EXPECT_MSG_EQ(Count(second, rep, agent::kClassL, agent::kActionMark),
                                  secondEpochMarks, name + ": one interval later");
            NS_TEST_EXPECT_MSG_EQ(rep.p_l_mark, secondEpochMarks ? 1.0 : 0.0, name + ": p_L");
        }
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief The rule-based teachers that answer agent requests, each in controlled states.
 */
class AqmTeachersTestSuite : public TestSuite
{
  public:
    AqmTeachersTestSuite()
        : TestSuite("aqm-teachers", Type::UNIT)
    {
        AddTestCase(new AqmTeachersNamesTestCase(), Duration::QUICK);
        AddTestCase(new AqmTeachersQuietTestCase(), Duration::QUICK);
        AddTestCase(new AqmTeachersLStepTestCase(), Duration::QUICK);
        AddTestCase(new AqmTeachersOverloadTestCase(), Duration::QUICK);
        AddTestCase(new AqmTeachersCodelTestCase(), Duration::QUICK);
    }
};

static AqmTeachersTestSuite g_aqmTeachersTestSuite; //!< static instance
