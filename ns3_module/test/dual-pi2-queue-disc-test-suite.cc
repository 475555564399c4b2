/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
// suite: dual-pi2-queue-disc
#include "dual-queue-test-helpers.h"

#include "ns3/aqm-queue-disc-registry.h"
#include "ns3/boolean.h"
#include "ns3/double.h"
#include "ns3/dual-pi2-queue-disc.h"
#include "ns3/enum.h"
#include "ns3/inet-socket-address.h"
#include "ns3/internet-stack-helper.h"
#include "ns3/ipv4-address-helper.h"
#include "ns3/ipv4-header.h"
#include "ns3/ipv4-queue-disc-item.h"
#include "ns3/net-device-queue-interface.h"
#include "ns3/node-container.h"
#include "ns3/packet.h"
#include "ns3/point-to-point-helper.h"
#include "ns3/queue.h"
#include "ns3/queue-size.h"
#include "ns3/simulator.h"
#include "ns3/string.h"
#include "ns3/socket.h"
#include "ns3/test.h"
#include "ns3/udp-socket-factory.h"
#include "ns3/uinteger.h"

#include <map>
#include <string>
#include <vector>

using namespace ns3;

/**
 * \ingroup aqm-llm-tests
 * \brief Reaches into DualPi2QueueDisc for the tests (it is a friend).
 */
class DualPi2QueueDiscTestPeer
{
  public:
    /// Set p' directly. \param q the queue disc \param p p'
    static void SetProbBase(Ptr<DualPi2QueueDisc> q, double p)
    {
        q->m_controller.SetProbBase(p);
    }

    /// \param q the queue disc \return p_L applied to the last L packet
    static double GetProbL(Ptr<DualPi2QueueDisc> q)
    {
        return q->m_probL;
    }
};

namespace
{

using dualq_test::DrainAt;
using dualq_test::EnqueueAt;
using dualq_test::MakeItem;
using dualq_test::ModeName;
using dualq_test::PAYLOAD;

/// \return the ECN field of a dequeued item
Ipv4Header::EcnType
EcnOf(Ptr<QueueDiscItem> item)
{
    return DynamicCast<Ipv4QueueDiscItem>(item)->GetHeader().GetEcn();
}

/// \return a DualPi2QueueDisc with a large buffer in \p unit, attributes \p attrs applied
Ptr<DualPi2QueueDisc>
MakeQueue(QueueSizeUnit unit,
          const std::vector<std::pair<std::string, Ptr<AttributeValue>>>& attrs = {},
          uint32_t limitPackets = 100000)
{
    auto q = CreateObject<DualPi2QueueDisc>();
    const uint32_t limit = unit == QueueSizeUnit::PACKETS ? limitPackets : limitPackets * 1000;
    q->SetMaxSize(QueueSize(unit, limit));
    for (const auto& [name, value] : attrs)
    {
        q->SetAttribute(name, *value);
    }
    q->AssignStreams(1);
    q->Initialize();
    return q;
}

/// Attribute value helpers
Ptr<AttributeValue>
Bool(bool v)
{
    return Create<BooleanValue>(v);
}

Ptr<AttributeValue>
Str(const std::string& v)
{
    return Create<StringValue>(v);
}

} // namespace

/**
 * \ingroup aqm-llm-tests
 * \brief ECT(1) and CE go to the L queue, Not-ECT and ECT(0) to the C queue; the shared
 * limit drops at enqueue (FORCED_DROP) in packet and byte mode.
 */
class DualPi2ClassifyAndLimitTestCase : public TestCase
{
  public:
    /// \param unit packet or byte mode
    DualPi2ClassifyAndLimitTestCase(QueueSizeUnit unit)
        : TestCase("Classifier and shared limit, " + ModeName(unit) + " mode"),
          m_unit(unit)
    {
    }

  private:
    void DoRun() override
    {
        auto q = MakeQueue(m_unit, {}, 10);
        const std::vector<Ipv4Header::EcnType> ecns = {Ipv4Header::ECN_ECT1,
                                                       Ipv4Header::ECN_CE,
                                                       Ipv4Header::ECN_ECT0,
                                                       Ipv4Header::ECN_NotECT};
        for (auto e : ecns)
        {
            NS_TEST_ASSERT_MSG_EQ(q->Enqueue(MakeItem(e)), true, "enqueue below the limit");
        }
        NS_TEST_ASSERT_MSG_EQ(q->GetInternalQueue(DualPi2QueueDisc::L_QUEUE)->GetNPackets(),
                              2,
                              "ECT(1) and CE in L");
        NS_TEST_ASSERT_MSG_EQ(q->GetInternalQueue(DualPi2QueueDisc::C_QUEUE)->GetNPackets(),
                              2,
                              "Not-ECT and ECT(0) in C");
        // Fill to the limit (10 packets / 10000 bytes), then 5 more are refused.
        uint32_t accepted = 0;
        for (int i = 0; i < 11; ++i)
        {
            accepted += q->Enqueue(MakeItem(ecns[i % 4])) ? 1 : 0;
        }
        NS_TEST_ASSERT_MSG_EQ(accepted, 6, "6 more fit in the shared buffer");
        NS_TEST_ASSERT_MSG_EQ(q->GetNPackets(), 10, "buffer full");
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().GetNDroppedPackets(DualPi2QueueDisc::FORCED_DROP),
                              5,
                              "forced drops at enqueue");
        // An empty queue disc dequeues nothing; a full one dequeues everything unmarked (p' = 0,
        // no sojourn).
        uint32_t n = 0;
        while (q->Dequeue())
        {
            ++n;
        }
        NS_TEST_ASSERT_MSG_EQ(n, 10, "all dequeued");
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().nTotalMarkedPackets, 0, "no marks");
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit; //!< mode
};

/**
 * \ingroup aqm-llm-tests
 * \brief LSojournLimit (off by default): 4 L packets wait 29 ms, 3 more 0.5 ms and 2 classic ECT(0)
 * ones 29 ms, all dequeued at 30 ms (p' still 0). With a 20 ms limit the 4 long-waiting L packets
 * are dropped and nothing else (the classic ones waited as long); off, none is dropped and those
 * 4 carry the native mark. Exact counts by reason.
 */
class DualPi2SojournLimitTestCase : public TestCase
{
  public:
    /// \param unit packet or byte mode \param limit whether the 20 ms limit is on
    DualPi2SojournLimitTestCase(QueueSizeUnit unit, bool limit)
        : TestCase(std::string("LSojournLimit ") + (limit ? "20ms" : "off") + ", " +
                   ModeName(unit) + " mode"),
          m_unit(unit),
          m_limit(limit)
    {
    }

  private:
    void DoRun() override
    {
        auto q = MakeQueue(m_unit, {{"LSojournLimit", Str(m_limit ? "20ms" : "0s")}});
        uint32_t forwarded = 0;
        EnqueueAt(q, MilliSeconds(1), 4, Ipv4Header::ECN_ECT1);
        EnqueueAt(q, MilliSeconds(1), 2, Ipv4Header::ECN_ECT0);
        EnqueueAt(q, MicroSeconds(29500), 3, Ipv4Header::ECN_ECT1);
        DrainAt(q, MilliSeconds(30), &forwarded);
        Simulator::Stop(MilliSeconds(31));
        Simulator::Run();
        const uint64_t limitDrops = m_limit ? 4 : 0;
        const auto& stats = q->GetStats();
        NS_TEST_EXPECT_MSG_EQ(stats.GetNDroppedPackets(DualPi2QueueDisc::L_SOJOURN_LIMIT_DROP),
                              limitDrops,
                              "limit drops");
        NS_TEST_EXPECT_MSG_EQ(stats.nTotalDroppedPackets, limitDrops, "no other drops");
        NS_TEST_EXPECT_MSG_EQ(stats.GetNMarkedPackets(DualPi2QueueDisc::L4S_NATIVE_MARK),
                              4 - limitDrops,
                              "native marks on the long-waiting L packets left");
        NS_TEST_EXPECT_MSG_EQ(stats.nTotalMarkedPackets, 4 - limitDrops, "no other marks");
        NS_TEST_EXPECT_MSG_EQ(forwarded, 9 - limitDrops, "forwarded");
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit; //!< mode
    bool m_limit;         //!< the 20 ms limit is on
};

/**
 * \ingroup aqm-llm-tests
 * \brief A lightly loaded queue disc (a packet of each class every ms, each dequeued 100 us
 * later) neither marks nor drops, and p' stays 0 over many updates.
 */
class DualPi2NoCongestionTestCase : public TestCase
{
  public:
    /// \param unit packet or byte mode
    DualPi2NoCongestionTestCase(QueueSizeUnit unit)
        : TestCase("No marks or drops without congestion, " + ModeName(unit) + " mode"),
          m_unit(unit)
    {
    }

  private:
    void DoRun() override
    {
        auto q = MakeQueue(m_unit);
        const Ipv4Header::EcnType ecns[] = {Ipv4Header::ECN_ECT1,
                                            Ipv4Header::ECN_ECT0,
                                            Ipv4Header::ECN_NotECT,
                                            Ipv4Header::ECN_ECT1};
        uint32_t dequeued = 0;
        for (int i = 0; i < 1000; ++i)
        {
            const Time t = MilliSeconds(i);
            Simulator::Schedule(t, [q, ecns, i]() {
                q->Enqueue(MakeItem(ecns[i % 4]));
                q->Enqueue(MakeItem(ecns[(i + 1) % 4]));
            });
            Simulator::Schedule(t + MicroSeconds(100), [q, &dequeued]() {
                while (q->Dequeue())
                {
                    ++dequeued;
                }
            });
        }
        Simulator::Stop(Seconds(1.1));
        Simulator::Run();
        NS_TEST_ASSERT_MSG_EQ(dequeued, 2000, "every packet dequeued");
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().nTotalDroppedPackets, 0, "no drops");
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().nTotalMarkedPackets, 0, "no marks");
        NS_TEST_ASSERT_MSG_EQ(q->GetController().GetProbBase(), 0.0, "p' stays 0");
        NS_TEST_ASSERT_MSG_GT(q->GetController().GetUpdateCount(), 60, "the PI2 timer ran");
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit; //!< mode
};

/**
 * \ingroup aqm-llm-tests
 * \brief Sustained Classic overload: 4 C packets per ms arrive, 1 per ms is served. p' rises
 * monotonically until p_C reaches p_Cmax = 1/k^2; then ECT(0) packets are dropped rather than
 * marked and L packets are dropped with p_C or marked. Every mark and drop is checked against
 * the controller's state at that instant.
 */
class DualPi2OverloadTestCase : public TestCase
{
  public:
    /// \param unit packet or byte mode
    DualPi2OverloadTestCase(QueueSizeUnit unit)
        : TestCase("Classic overload raises p' to p_Cmax, then overload rules, " +
                   ModeName(unit) + " mode"),
          m_unit(unit)
    {
    }

  private:
    void DoRun() override
    {
        auto q = MakeQueue(m_unit);
        std::vector<double> probs;
        Time overloadAt = Time::Max();
        q->TraceConnectWithoutContext(
            "ProbBase",
            Callback<void, double, double>([&](double, double p) {
                if (overloadAt == Time::Max())
                {
                    probs.push_back(p);
                }
                if (p >= 0.5 && overloadAt == Time::Max())
                {
                    overloadAt = Simulator::Now();
                }
            }));
        std::map<std::string, uint32_t> seen;
        uint32_t violations = 0;
        auto check = [&](Ptr<const QueueDiscItem>, const char* reason) {
            const std::string r(reason);
            seen[r]++;
            const auto& c = q->GetController();
            if (r == DualPi2QueueDisc::UNFORCED_CLASSIC_MARK && c.IsClassicOverloaded())
            {
                ++violations; // ECN on overload
            }
            if (r == DualPi2QueueDisc::OVERLOAD_CLASSIC_DROP && !c.IsClassicOverloaded())
            {
                ++violations;
            }
            if ((r == DualPi2QueueDisc::L4S_COUPLED_MARK ||
                 r == DualPi2QueueDisc::L4S_NATIVE_MARK) &&
                c.IsLSaturated())
            {
                ++violations;
            }
            if ((r == DualPi2QueueDisc::OVERLOAD_L4S_DROP ||
                 r == DualPi2QueueDisc::OVERLOAD_L4S_MARK) &&
                !c.IsLSaturated())
            {
                ++violations;
            }
        };
        q->TraceConnectWithoutContext(
            "Mark",
            Callback<void, Ptr<const QueueDiscItem>, const char*>(check));
        q->TraceConnectWithoutContext(
            "DropAfterDequeue",
            Callback<void, Ptr<const QueueDiscItem>, const char*>(check));

        uint32_t ceDelivered = 0;
        for (int i = 0; i < 2400; ++i) // 0.6 s
        {
            const Time t = MicroSeconds(250 * i);
            const auto ecn = (i % 2) ? Ipv4Header::ECN_ECT0 : Ipv4Header::ECN_NotECT;
            Simulator::Schedule(t, [q, ecn]() { q->Enqueue(MakeItem(ecn)); });
            if (i % 20 == 0) // an L packet every 5 ms
            {
                Simulator::Schedule(t, [q]() { q->Enqueue(MakeItem(Ipv4Header::ECN_ECT1)); });
            }
            if (i % 4 == 3)
            {
                Simulator::Schedule(t, [q, &ceDelivered]() {
                    auto item = q->Dequeue();
                    if (item && EcnOf(item) == Ipv4Header::ECN_CE)
                    {
                        ++ceDelivered; // L and C marks alike
                    }
                });
            }
        }
        Simulator::Stop(Seconds(0.6));
        Simulator::Run();

        NS_TEST_ASSERT_MSG_NE(overloadAt, Time::Max(), "p' reached 1/k (p_C reached p_Cmax)");
        NS_TEST_ASSERT_MSG_GT(probs.size(), 5, "several updates before overload");
        bool monotonic = true;
        for (std::size_t i = 1; i < probs.size(); ++i)
        {
            monotonic = monotonic && probs[i] > probs[i - 1];
        }
        NS_TEST_ASSERT_MSG_EQ(monotonic, true, "p' rises strictly while the queue builds");
        NS_TEST_ASSERT_MSG_EQ(violations, 0, "every mark/drop reason matches the overload state");
        NS_TEST_ASSERT_MSG_GT(seen[DualPi2QueueDisc::UNFORCED_CLASSIC_MARK], 0, "C marks");
        NS_TEST_ASSERT_MSG_GT(seen[DualPi2QueueDisc::UNFORCED_CLASSIC_DROP], 0, "C drops");
        NS_TEST_ASSERT_MSG_GT(seen[DualPi2QueueDisc::OVERLOAD_CLASSIC_DROP],
                              0,
                              "ECT(0) dropped on overload");
        NS_TEST_ASSERT_MSG_GT(seen[DualPi2QueueDisc::L4S_COUPLED_MARK], 0, "coupled L marks");
        NS_TEST_ASSERT_MSG_GT(seen[DualPi2QueueDisc::OVERLOAD_L4S_DROP], 0, "L drops on overload");
        NS_TEST_ASSERT_MSG_GT(seen[DualPi2QueueDisc::OVERLOAD_L4S_MARK], 0, "L marks on overload");
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().GetNDroppedPackets(DualPi2QueueDisc::FORCED_DROP),
                              0,
                              "no buffer overflow");
        NS_TEST_ASSERT_MSG_GT(ceDelivered, 0, "CE packets delivered");
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit; //!< mode
};

/**
 * \ingroup aqm-llm-tests
 * \brief Deterministic L marking (DeterministicMarking: recur()) with p' pinned.
 * - native marking off: p_L = min(k p', 1) and the number of marks is exact;
 * - ramp on, packets above the ramp: all marked CE, none dropped (below overload);
 * - ramp on, packets in the middle of the ramp: p_L = max(0.5, k p');
 * - saturated (k p' >= 1): drops with p_C (DropOnOverload), the rest marked; without
 *   DropOnOverload only marks.
 */
class DualPi2LMarkingTestCase : public TestCase
{
  public:
    /// \param unit packet or byte mode
    DualPi2LMarkingTestCase(QueueSizeUnit unit)
        : TestCase("L marking: coupled, ramp, step, overload, " + ModeName(unit) + " mode"),
          m_unit(unit)
    {
    }

  private:
    struct Result
    {
        uint32_t delivered{0}; //!< packets dequeued
        uint32_t ce{0};        //!< of which CE
        double probL{-1};      //!< p_L after the run
        Ptr<DualPi2QueueDisc> q; //!< the queue disc
    };

    /// Enqueue \p n ECT(1) packets at 0, dequeue all at \p at with p' = \p p.
    Result Run(double p,
               Time at,
               const std::vector<std::pair<std::string, Ptr<AttributeValue>>>& extra,
               uint32_t n = 100)
    {
        std::vector<std::pair<std::string, Ptr<AttributeValue>>> attrs = {
            {"Tupdate", Str("1000s")}, // no controller update during the test
            {"DeterministicMarking", Bool(true)},
            {"ThLen", Create<UintegerValue>(0)},
        };
        attrs.insert(attrs.end(), extra.begin(), extra.end());
        Result r;
        r.q = MakeQueue(m_unit, attrs);
        DualPi2QueueDiscTestPeer::SetProbBase(r.q, p);
        for (uint32_t i = 0; i < n; ++i)
        {
            r.q->Enqueue(MakeItem(Ipv4Header::ECN_ECT1));
        }
        Simulator::Schedule(at, [&r]() {
            while (auto item = r.q->Dequeue())
            {
                ++r.delivered;
                r.ce += EcnOf(item) == Ipv4Header::ECN_CE ? 1 : 0;
            }
            r.probL = DualPi2QueueDiscTestPeer::GetProbL(r.q);
        });
        Simulator::Stop(at + MilliSeconds(1));
        Simulator::Run();
        Simulator::Destroy();
        return r;
    }

    void DoRun() override
    {
        using Q = DualPi2QueueDisc;
        const auto none = std::make_pair(std::string("LMarking"), Str("None"));
        // Native marking off: p_L = min(k p', 1), exact counts with recur().
        for (double p : {0.0, 0.0525, 0.2025, 0.4025})
        {
            auto r = Run(p, MilliSeconds(5), {none});
            const double pL = std::min(2 * p, 1.0);
            NS_TEST_ASSERT_MSG_EQ_TOL(r.probL, pL, 1e-12, "p_L = min(k p', 1), p'=" << p);
            // N p_L is never within float error of an integer here, so floor is exact.
            const auto expected = static_cast<uint32_t>(100 * pL);
            NS_TEST_ASSERT_MSG_EQ(r.q->GetStats().GetNMarkedPackets(Q::L4S_COUPLED_MARK),
                                  expected,
                                  "coupled marks, p'=" << p);
            NS_TEST_ASSERT_MSG_EQ(r.ce, expected, "CE delivered, p'=" << p);
            NS_TEST_ASSERT_MSG_EQ(r.q->GetStats().nTotalDroppedPackets, 0, "no drops");
        }
        // Above the ramp (sojourn 5 ms > 1.2 ms): every packet marked, none dropped.
        for (double p : {0.0, 0.3})
        {
            auto r = Run(p, MilliSeconds(5), {});
            NS_TEST_ASSERT_MSG_EQ(r.delivered, 100, "none dropped");
            NS_TEST_ASSERT_MSG_EQ(r.ce, 100, "all CE");
            NS_TEST_ASSERT_MSG_EQ(r.q->GetStats().GetNMarkedPackets(Q::L4S_NATIVE_MARK),
                                  100,
                                  "native marks");
            NS_TEST_ASSERT_MSG_EQ(r.q->GetStats().nTotalDroppedPackets, 0, "no drops");
        }
        // Middle of the ramp (1 ms: p'_L = 0.5): p_L = max(0.5, k p').
        {
            auto r = Run(0.1, MilliSeconds(1), {});
            NS_TEST_ASSERT_MSG_EQ_TOL(r.probL, 0.5, 1e-12, "ramp wins");
            NS_TEST_ASSERT_MSG_EQ(r.ce, 50, "half marked");
            NS_TEST_ASSERT_MSG_EQ(r.q->GetStats().GetNMarkedPackets(Q::L4S_NATIVE_MARK),
                                  50,
                                  "native");
            r = Run(0.3525, MilliSeconds(1), {});
            NS_TEST_ASSERT_MSG_EQ_TOL(r.probL, 0.705, 1e-12, "coupling wins");
            NS_TEST_ASSERT_MSG_EQ(r.q->GetStats().GetNMarkedPackets(Q::L4S_COUPLED_MARK),
                                  70,
                                  "coupled");
        }
        // Below the ramp (0.5 ms), p' = 0: nothing.
        {
            auto r = Run(0.0, MicroSeconds(500), {});
            NS_TEST_ASSERT_MSG_EQ((r.ce + r.q->GetStats().nTotalMarkedPackets), 0, "no marks");
        }
        // Step at 1 ms: 0.9 ms not marked, 1.1 ms marked.
        {
            const auto step = std::make_pair(std::string("LMarking"), Str("Step"));
            auto r = Run(0.0, MicroSeconds(900), {step});
            NS_TEST_ASSERT_MSG_EQ(r.ce, 0, "below the step");
            r = Run(0.0, MicroSeconds(1100), {step});
            NS_TEST_ASSERT_MSG_EQ(r.ce, 100, "above the step");
        }
        // Th_len = 1: a lone L packet is not marked natively.
        {
            auto r = Run(0.0, MilliSeconds(5), {{"ThLen", Create<UintegerValue>(1)}}, 1);
            NS_TEST_ASSERT_MSG_EQ(r.ce, 0, "lone packet not marked");
            r = Run(0.0, MilliSeconds(5), {{"ThLen", Create<UintegerValue>(1)}}, 4);
            NS_TEST_ASSERT_MSG_EQ(r.ce, 3, "all but the last of 4 marked");
        }
        // Saturation: p' = 0.61, p_C = 0.3721: 37 dropped, 63 marked.
        {
            auto r = Run(0.61, MicroSeconds(100), {none});
            NS_TEST_ASSERT_MSG_EQ(r.q->GetStats().GetNDroppedPackets(Q::OVERLOAD_L4S_DROP),
                                  37,
                                  "overload drops with p_C");
            NS_TEST_ASSERT_MSG_EQ(r.q->GetStats().GetNMarkedPackets(Q::OVERLOAD_L4S_MARK),
                                  63,
                                  "the rest marked");
            NS_TEST_ASSERT_MSG_EQ(r.delivered, 63, "delivered");
            NS_TEST_ASSERT_MSG_EQ(r.ce, 63, "all delivered CE");
            NS_TEST_ASSERT_MSG_EQ_TOL(r.probL, 1.0, 1e-12, "p_L = 1");
            // Exactly at p' = 1/k the L queue is saturated.
            r = Run(0.5, MicroSeconds(100), {none});
            NS_TEST_ASSERT_MSG_EQ(r.q->GetStats().GetNDroppedPackets(Q::OVERLOAD_L4S_DROP),
                                  25,
                                  "p_C = p_Cmax = 0.25");
            // Without DropOnOverload p' is capped at 1/k and nothing is dropped.
            r = Run(0.9, MicroSeconds(100), {none, {"DropOnOverload", Bool(false)}});
            NS_TEST_ASSERT_MSG_EQ(r.q->GetController().GetProbBase(), 0.5, "p' capped at 1/k");
            NS_TEST_ASSERT_MSG_EQ(r.q->GetStats().nTotalDroppedPackets, 0, "no drops");
            NS_TEST_ASSERT_MSG_EQ(r.ce, 100, "all marked");
            NS_TEST_ASSERT_MSG_EQ_TOL(r.probL, 1.0, 1e-12, "p_L = min(k p', 1) = 1");
        }
        // CE packets stay CE and are not counted as new marks.
        {
            auto q = MakeQueue(m_unit, {{"Tupdate", Str("1000s")}});
            q->Enqueue(MakeItem(Ipv4Header::ECN_CE));
            Ptr<QueueDiscItem> item;
            Simulator::Schedule(MilliSeconds(5), [&]() { item = q->Dequeue(); });
            Simulator::Stop(MilliSeconds(6));
            Simulator::Run();
            NS_TEST_ASSERT_MSG_EQ(EcnOf(item), Ipv4Header::ECN_CE, "CE");
            NS_TEST_ASSERT_MSG_EQ(q->GetStats().nTotalMarkedPackets, 0, "not re-marked");
            Simulator::Destroy();
        }
    }

    QueueSizeUnit m_unit; //!< mode
};

/**
 * \ingroup aqm-llm-tests
 * \brief Classic decisions with p' pinned: ECT(0) marked and Not-ECT dropped with p_C
 * (exact with recur()); UseEcn=false drops ECT(0); on overload ECT(0) is dropped.
 */
class DualPi2ClassicTestCase : public TestCase
{
  public:
    /// \param unit packet or byte mode
    DualPi2ClassicTestCase(QueueSizeUnit unit)
        : TestCase("Classic marks and drops with p_C, " + ModeName(unit) + " mode"),
          m_unit(unit)
    {
    }

  private:
    /// Run 100 C packets of \p ecn through with p' = \p p. \return the queue disc
    Ptr<DualPi2QueueDisc> Run(double p, Ipv4Header::EcnType ecn, bool useEcn, uint32_t& out)
    {
        auto q = MakeQueue(m_unit,
                           {{"Tupdate", Str("1000s")},
                            {"DeterministicMarking", Bool(true)},
                            {"UseEcn", Bool(useEcn)}});
        DualPi2QueueDiscTestPeer::SetProbBase(q, p);
        for (int i = 0; i < 100; ++i)
        {
            q->Enqueue(MakeItem(ecn));
        }
        out = 0;
        while (q->Dequeue())
        {
            ++out;
        }
        return q;
    }

    void DoRun() override
    {
        using Q = DualPi2QueueDisc;
        uint32_t out = 0;
        auto q = Run(0.31, Ipv4Header::ECN_ECT0, true, out); // p_C = 0.0961
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().GetNMarkedPackets(Q::UNFORCED_CLASSIC_MARK),
                              9,
                              "ECT(0) marked");
        NS_TEST_ASSERT_MSG_EQ(out, 100, "none dropped");
        q = Run(0.31, Ipv4Header::ECN_NotECT, true, out);
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().GetNDroppedPackets(Q::UNFORCED_CLASSIC_DROP),
                              9,
                              "Not-ECT dropped");
        NS_TEST_ASSERT_MSG_EQ(out, 91, "the rest delivered"); // 100 - 9
        q = Run(0.31, Ipv4Header::ECN_ECT0, false, out);
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().GetNDroppedPackets(Q::UNFORCED_CLASSIC_DROP),
                              9,
                              "ECT(0) dropped without UseEcn");
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().nTotalMarkedPackets, 0, "no marks without UseEcn");
        q = Run(0.61, Ipv4Header::ECN_ECT0, true, out); // p_C = 0.3721 >= 0.25
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().GetNDroppedPackets(Q::OVERLOAD_CLASSIC_DROP),
                              37,
                              "ECT(0) dropped on overload");
        NS_TEST_ASSERT_MSG_EQ(q->GetStats().nTotalMarkedPackets, 0, "no marks on overload");
        q = Run(1.0, Ipv4Header::ECN_NotECT, true, out);
        NS_TEST_ASSERT_MSG_EQ(out, 0, "p' = 1 drops everything");
        Simulator::Destroy();
    }

    QueueSizeUnit m_unit; //!< mode
};

/**
 * \ingroup aqm-llm-tests
 * \brief The weighted scheduler gives C its ClassicWeight share while both are backlogged;
 * the time-shifted one serves C only when its head is TimeShift older than L's.
 */
class DualPi2SchedulerTestCase : public TestCase
{
  public:
    /// \param unit packet or byte mode
    DualPi2SchedulerTestCase(QueueSizeUnit unit)
        : TestCase("Weighted and time-shifted schedulers, " + ModeName(unit) + " mode"),
          m_unit(unit)
    {
    }

  private:
    void DoRun() override
    {
        for (double w : {0.1, 0.25, 0.5})
        {
            auto q = MakeQueue(m_unit,
                               {{"Tupdate", Str("1000s")},
                                {"ClassicWeight", Create<DoubleValue>(w)}});
            for (int i = 0; i < 200; ++i)
            {
                q->Enqueue(MakeItem(Ipv4Header::ECN_ECT1));
                q->Enqueue(MakeItem(Ipv4Header::ECN_NotECT));
            }
            uint32_t c = 0;
            for (int i = 0; i < 100; ++i)
            {
                c += EcnOf(q->Dequeue()) == Ipv4Header::ECN_NotECT ? 1 : 0;
            }
            NS_TEST_ASSERT_MSG_EQ_TOL(c, 100 * w, 1.0, "C share, weight " << w);
            Simulator::Destroy();
        }
        for (const auto& [shift, expectC] :
             std::vector<std::pair<std::string, bool>>{{"50ms", false}, {"5ms", true}})
        {
            auto q = MakeQueue(m_unit,
                               {{"Tupdate", Str("1000s")},
                                {"Scheduler", Str("TimeShifted")},
                                {"TimeShift", Str(shift)}});
            q->Enqueue(MakeItem(Ipv4Header::ECN_NotECT));
            Ipv4Header::EcnType first = Ipv4Header::ECN_CE;
            Simulator::Schedule(MilliSeconds(20),
                                [q]() { q->Enqueue(MakeItem(Ipv4Header::ECN_ECT1)); });
            Simulator::Schedule(MilliSeconds(30), [&first, q]() { first = EcnOf(q->Dequeue()); });
            Simulator::Stop(MilliSeconds(31));
            Simulator::Run();
            // C head 30 ms old, L head 10 ms: C first only if 30 - shift > 10.
            const bool cFirst = (first == Ipv4Header::ECN_NotECT);
            NS_TEST_ASSERT_MSG_EQ(cFirst, expectC, "shift " << shift);
            Simulator::Destroy();
        }
    }

    QueueSizeUnit m_unit; //!< mode
};

/**
 * \ingroup aqm-llm-tests
 * \brief ExcludeBlockedTime: the native L marking sees the sojourn only up to the previous
 * service instant; a dequeue while the device queue is stopped is not a service instant.
 */
class DualPi2BlockedTimeTestCase : public TestCase
{
  public:
    /// \param unit packet or byte mode
    DualPi2BlockedTimeTestCase(QueueSizeUnit unit)
        : TestCase("ExcludeBlockedTime (Wi-Fi stalls), " + ModeName(unit) + " mode"),
          m_unit(unit)
    {
    }

  private:
    /// 10 L packets at 1 ms; 5 dequeued at 10 ms, 5 at 20 ms. \return CE count
    uint32_t Burst(bool exclude)
    {
        auto q = MakeQueue(m_unit,
                           {{"Tupdate", Str("1000s")},
                            {"ThLen", Create<UintegerValue>(0)},
                            {"ExcludeBlockedTime", Bool(exclude)}});
        uint32_t ce = 0;
        auto drain = [q, &ce](int n) {
            for (int i = 0; i < n; ++i)
            {
                ce += EcnOf(q->Dequeue()) == Ipv4Header::ECN_CE ? 1 : 0;
            }
        };
        Simulator::Schedule(MilliSeconds(1), [q]() {
            for (int i = 0; i < 10; ++i)
            {
                q->Enqueue(MakeItem(Ipv4Header::ECN_ECT1));
            }
        });
        Simulator::Schedule(MilliSeconds(10), [&drain]() { drain(5); });
        Simulator::Schedule(MilliSeconds(20), [&drain]() { drain(5); });
        Simulator::Stop(MilliSeconds(21));
        Simulator::Run();
        Simulator::Destroy();
        return ce;
    }

    /// Service at 10 ms; a dequeue at 20 ms with the device queue stopped or not; a packet
    /// enqueued at 15 ms dequeued at 30 ms. \return whether it was marked
    bool StoppedDevice(bool stopped)
    {
        auto q = MakeQueue(m_unit,
                           {{"Tupdate", Str("1000s")},
                            {"ThLen", Create<UintegerValue>(0)},
                            {"ExcludeBlockedTime", Bool(true)}});
        auto ndqi = CreateObject<NetDeviceQueueInterface>();
        q->SetNetDeviceQueueInterface(ndqi);
        bool marked = false;
        Simulator::Schedule(MilliSeconds(1), [q]() { q->Enqueue(MakeItem(Ipv4Header::ECN_ECT1)); });
        Simulator::Schedule(MilliSeconds(10), [q]() { q->Dequeue(); });
        Simulator::Schedule(MilliSeconds(12), [q]() { q->Enqueue(MakeItem(Ipv4Header::ECN_ECT1)); });
        Simulator::Schedule(MilliSeconds(15), [q]() { q->Enqueue(MakeItem(Ipv4Header::ECN_ECT1)); });
        Simulator::Schedule(MilliSeconds(20), [q, ndqi, stopped]() {
            if (stopped)
            {
                ndqi->GetTxQueue(0)->Stop();
            }
            q->Dequeue(); // the 12 ms packet (would be requeued by QueueDisc::Transmit)
            ndqi->GetTxQueue(0)->Start();
        });
        Simulator::Schedule(MilliSeconds(30), [q, &marked]() {
            marked = EcnOf(q->Dequeue()) == Ipv4Header::ECN_CE;
        });
        Simulator::Stop(MilliSeconds(31));
        Simulator::Run();
        Simulator::Destroy();
        return marked;
    }

    void DoRun() override
    {
        NS_TEST_ASSERT_MSG_EQ(Burst(false), 10, "raw sojourn (9 and 19 ms): all marked");
        NS_TEST_ASSERT_MSG_EQ(Burst(true),
                              5,
                              "first burst waited only for the device; second held back 9 ms");
        NS_TEST_ASSERT_MSG_EQ(StoppedDevice(false),
                              true,
                              "service at 20 ms: the 15 ms packet missed it (5 ms > ramp)");
        NS_TEST_ASSERT_MSG_EQ(StoppedDevice(true),
                              false,
                              "stopped at 20 ms: no service instant since 10 ms");
    }

    QueueSizeUnit m_unit; //!< mode
};

/**
 * \ingroup aqm-llm-tests
 * \brief On a real point-to-point bottleneck (installed through AqmQueueDiscRegistry, device
 * queue of 1 packet, so the device is stopped whenever the queue disc holds a backlog),
 * unresponsive ECT(1) traffic at twice the link rate is CE-marked by the native L AQM and not
 * dropped; with ExcludeBlockedTime the marking delay is the sojourn less at most one
 * transmission time (the device serves packet by packet).
 */
class DualPi2PointToPointTestCase : public TestCase
{
  public:
    /// \param unit packet or byte mode
    DualPi2PointToPointTestCase(QueueSizeUnit unit)
        : TestCase("Point-to-point bottleneck, ECT(1) overload, " + ModeName(unit) + " mode"),
          m_unit(unit)
    {
    }

  private:
    void RunOnce(bool exclude)
    {
        NodeContainer nodes;
        nodes.Create(2);
        PointToPointHelper p2p;
        p2p.SetDeviceAttribute("DataRate", StringValue("10Mbps"));
        p2p.SetChannelAttribute("Delay", StringValue("1ms"));
        p2p.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize", StringValue("1p"));
        NetDeviceContainer devs = p2p.Install(nodes);
        InternetStackHelper stack;
        stack.Install(nodes);
        Ipv4AddressHelper addr("10.1.1.0", "255.255.255.0");
        Ipv4InterfaceContainer ifs = addr.Assign(devs);
        AqmQueueDiscOptions opts;
        opts.limit = QueueSize(m_unit, m_unit == QueueSizeUnit::PACKETS ? 10000 : 10000000);
        auto q = DynamicCast<DualPi2QueueDisc>(
            AqmQueueDiscRegistry::Install(devs.Get(0), "dualpi2", opts));
        NS_TEST_ASSERT_MSG_NE(q, nullptr, "installed");
        q->SetAttribute("ExcludeBlockedTime", BooleanValue(exclude));

        Time lastSojourn;
        Time maxGap;
        Time minGap = Time::Max();
        uint32_t samples = 0;
        q->TraceConnectWithoutContext("SojournL",
                                      Callback<void, Time>([&](Time t) { lastSojourn = t; }));
        q->TraceConnectWithoutContext("LMarkingDelay", Callback<void, Time>([&](Time t) {
                                          maxGap = std::max(maxGap, lastSojourn - t);
                                          minGap = std::min(minGap, lastSojourn - t);
                                          ++samples;
                                      }));

        Ptr<Socket> sink = Socket::CreateSocket(nodes.Get(1), UdpSocketFactory::GetTypeId());
        sink->Bind(InetSocketAddress(Ipv4Address::GetAny(), 9));
        Ptr<Socket> src = Socket::CreateSocket(nodes.Get(0), UdpSocketFactory::GetTypeId());
        src->SetIpTos(Ipv4Header::ECN_ECT1);
        src->Connect(InetSocketAddress(ifs.GetAddress(1), 9));
        // 1000-byte IP packets at 20 Mb/s for 0.1 s: 250 packets.
        for (int i = 0; i < 250; ++i)
        {
            Simulator::Schedule(MicroSeconds(400 * i), [src]() { src->Send(Create<Packet>(972)); });
        }
        Simulator::Stop(Seconds(0.5));
        Simulator::Run();

        const auto& stats = q->GetStats();
        NS_TEST_ASSERT_MSG_EQ(stats.nTotalDroppedPackets, 0, "no drops");
        NS_TEST_ASSERT_MSG_GT(stats.GetNMarkedPackets(DualPi2QueueDisc::L4S_NATIVE_MARK),
                              100,
                              "native L marks once the queue exceeds the ramp");
        NS_TEST_ASSERT_MSG_GT(samples, 200, "L packets went through the queue disc");
        NS_TEST_ASSERT_MSG_EQ((minGap >= Time(0)), true, "marking delay <= sojourn");
        if (exclude)
        {
            // 1000 B + 2 B PPP at 10 Mb/s = 801.6 us between service instants.
            NS_TEST_ASSERT_MSG_EQ(maxGap, NanoSeconds(801600), "at most one tx time");
        }
        else
        {
            NS_TEST_ASSERT_MSG_EQ(maxGap, Time(0), "raw sojourn");
        }
        Simulator::Destroy();
    }

    void DoRun() override
    {
        RunOnce(false);
        RunOnce(true);
    }

    QueueSizeUnit m_unit; //!< mode
};

/**
 * \ingroup aqm-llm-tests
 * \brief Test suite for DualPi2QueueDisc.
 */
class DualPi2QueueDiscTestSuite : public TestSuite
{
  public:
    DualPi2QueueDiscTestSuite()
        : TestSuite("dual-pi2-queue-disc", Type::UNIT)
    {
        for (auto unit : {QueueSizeUnit::PACKETS, QueueSizeUnit::BYTES})
        {
            AddTestCase(new DualPi2ClassifyAndLimitTestCase(unit), Duration::QUICK);
            AddTestCase(new DualPi2NoCongestionTestCase(unit), Duration::QUICK);
            AddTestCase(new DualPi2OverloadTestCase(unit), Duration::QUICK);
            AddTestCase(new DualPi2LMarkingTestCase(unit), Duration::QUICK);
            AddTestCase(new DualPi2ClassicTestCase(unit), Duration::QUICK);
            AddTestCase(new DualPi2SchedulerTestCase(unit), Duration::QUICK);
            AddTestCase(new DualPi2BlockedTimeTestCase(unit), Duration::QUICK);
            AddTestCase(new DualPi2PointToPointTestCase(unit), Duration::QUICK);
            AddTestCase(new DualPi2SojournLimitTestCase(unit, true), Duration::QUICK);
            AddTestCase(new DualPi2SojournLimitTestCase(unit, false), Duration::QUICK);
        }
    }
};

static DualPi2QueueDiscTestSuite g_dualPi2QueueDiscTestSuite; //!< static instance
