/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
// suite: dual-pi2-controller
#include "ns3/dual-pi2-controller.h"
#include "ns3/test.h"

using namespace ns3;

/**
 * \ingroup aqm-llm-tests
 * \brief Gain sets: RFC 9332 Appendix A's derivation (the default) and Linux sch_dualpi2's.
 */
class DualPi2ControllerGainsTestCase : public TestCase
{
  public:
    DualPi2ControllerGainsTestCase()
        : TestCase("Default gains follow RFC 9332 Appendix A; Linux set available")
    {
    }

  private:
    void DoRun() override
    {
        const auto rfc = DualPi2Controller::Params::Rfc9332();
        NS_TEST_ASSERT_MSG_EQ(rfc.target, MilliSeconds(15), "target");
        NS_TEST_ASSERT_MSG_EQ(rfc.tupdate, MilliSeconds(15), "Tupdate = min(target, RTT_max/3)");
        NS_TEST_ASSERT_MSG_EQ_TOL(rfc.alpha, 0.15, 1e-12, "alpha = 0.1 Tupdate / RTT_max^2");
        NS_TEST_ASSERT_MSG_EQ_TOL(rfc.beta, 3.0, 1e-12, "beta = 0.3 / RTT_max");
        NS_TEST_ASSERT_MSG_EQ(rfc.k, 2.0, "k");

        const DualPi2Controller::Params def;
        NS_TEST_ASSERT_MSG_EQ(def.tupdate, rfc.tupdate, "default is the RFC set");
        NS_TEST_ASSERT_MSG_EQ_TOL(def.alpha, rfc.alpha, 1e-12, "default is the RFC set");
        NS_TEST_ASSERT_MSG_EQ_TOL(def.beta, rfc.beta, 1e-12, "default is the RFC set");

        const auto other = DualPi2Controller::Params::Rfc9332(MilliSeconds(20), MilliSeconds(30));
        NS_TEST_ASSERT_MSG_EQ(other.tupdate, MilliSeconds(10), "RTT_max/3 < target");
        NS_TEST_ASSERT_MSG_EQ_TOL(other.alpha, 0.1 * 0.01 / (0.03 * 0.03), 1e-12, "alpha");
        NS_TEST_ASSERT_MSG_EQ_TOL(other.beta, 10.0, 1e-12, "beta");

        const auto lx = DualPi2Controller::Params::Linux();
        NS_TEST_ASSERT_MSG_EQ(lx.tupdate, MilliSeconds(16), "Linux Tupdate");
        NS_TEST_ASSERT_MSG_EQ_TOL(lx.alpha, 0.16, 1e-12, "Linux alpha");
        NS_TEST_ASSERT_MSG_EQ_TOL(lx.beta, 3.2, 1e-12, "Linux beta");
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief The PI2 update, its clamps, the derived probabilities and the overload decisions.
 */
class DualPi2ControllerUpdateTestCase : public TestCase
{
  public:
    DualPi2ControllerUpdateTestCase()
        : TestCase("PI2 update, clamps, p_C, p_CL, overload")
    {
    }

  private:
    void DoRun() override
    {
        DualPi2Controller c;
        NS_TEST_ASSERT_MSG_EQ(c.GetProbBase(), 0.0, "starts at 0");
        // p' = 0.15 (0.020 - 0.015) + 3 (0.020 - 0) = 0.06075
        c.Update(MilliSeconds(20));
        NS_TEST_ASSERT_MSG_EQ_TOL(c.GetProbBase(), 0.06075, 1e-12, "first update");
        // p' += 0.15 (0.030 - 0.015) + 3 (0.030 - 0.020) = 0.093
        c.Update(MilliSeconds(30));
        NS_TEST_ASSERT_MSG_EQ_TOL(c.GetProbBase(), 0.093, 1e-12, "second update");
        NS_TEST_ASSERT_MSG_EQ_TOL(c.GetProbC(), 0.093 * 0.093, 1e-12, "p_C = p'^2");
        NS_TEST_ASSERT_MSG_EQ_TOL(c.GetProbCL(), 0.186, 1e-12, "p_CL = k p'");
        NS_TEST_ASSERT_MSG_EQ(c.GetLastDelay(), MilliSeconds(30), "last delay");
        NS_TEST_ASSERT_MSG_EQ(c.GetUpdateCount(), 2, "updates");
        // The L delay does not count with the default (Classic) delay source.
        c.Update(MilliSeconds(30), Seconds(1));
        NS_TEST_ASSERT_MSG_EQ_TOL(c.GetProbBase(), 0.093 + 0.15 * 0.015, 1e-12, "L ignored");
        // Clamps.
        c.Update(Seconds(1));
        NS_TEST_ASSERT_MSG_EQ(c.GetProbBase(), 1.0, "upper clamp");
        NS_TEST_ASSERT_MSG_EQ(c.GetProbCL(), 1.0, "p_CL clamped to 1");
        NS_TEST_ASSERT_MSG_EQ(c.GetCoupledProbRaw(), 2.0, "k p' unclamped");
        c.Update(Time(0));
        NS_TEST_ASSERT_MSG_EQ(c.GetProbBase(), 0.0, "lower clamp");
        c.Reset();
        NS_TEST_ASSERT_MSG_EQ(c.GetUpdateCount(), 0, "reset");

        // Max delay source.
        DualPi2Controller::Params p;
        p.delaySource = DualPi2Controller::DelaySource::MAX;
        DualPi2Controller m(p);
        m.Update(MilliSeconds(5), MilliSeconds(20));
        NS_TEST_ASSERT_MSG_EQ_TOL(m.GetProbBase(), 0.06075, 1e-12, "max(C, L) drives p'");

        // Overload thresholds, k = 2: p_Cmax = 1/4, at p' = 1/2 both.
        NS_TEST_ASSERT_MSG_EQ_TOL(c.GetProbCMax(), 0.25, 1e-15, "p_Cmax = 1/k^2");
        c.SetProbBase(0.49);
        NS_TEST_ASSERT_MSG_EQ(c.IsClassicOverloaded(), false, "below p_Cmax");
        NS_TEST_ASSERT_MSG_EQ(c.IsLSaturated(), false, "below saturation");
        NS_TEST_ASSERT_MSG_EQ_TOL(c.GetProbL(0.3), 0.98, 1e-12, "p_L = max(p'_L, p_CL)");
        NS_TEST_ASSERT_MSG_EQ_TOL(c.GetProbL(0.99), 0.99, 1e-12, "p_L = max(p'_L, p_CL)");
        c.SetProbBase(0.5);
        NS_TEST_ASSERT_MSG_EQ(c.IsClassicOverloaded(), true, "at p_Cmax");
        NS_TEST_ASSERT_MSG_EQ(c.IsLSaturated(), true, "at saturation");
        // k = 4: p_Cmax = 1/16, both at p' = 1/4. k = 1: p_Cmax = 1, only at p' = 1.
        p = DualPi2Controller::Params();
        p.k = 4.0;
        DualPi2Controller c4(p);
        NS_TEST_ASSERT_MSG_EQ_TOL(c4.GetProbCMax(), 1.0 / 16, 1e-15, "k = 4");
        c4.SetProbBase(0.24);
        NS_TEST_ASSERT_MSG_EQ((c4.IsClassicOverloaded() || c4.IsLSaturated()), false, "k = 4");
        c4.SetProbBase(0.25);
        NS_TEST_ASSERT_MSG_EQ((c4.IsClassicOverloaded() && c4.IsLSaturated()), true, "k = 4");
        p.k = 1.0;
        DualPi2Controller c1(p);
        c1.SetProbBase(0.99);
        NS_TEST_ASSERT_MSG_EQ(c1.IsClassicOverloaded(), false, "k = 1");
        c1.SetProbBase(1.0);
        NS_TEST_ASSERT_MSG_EQ(c1.IsClassicOverloaded(), true, "k = 1");
        // A cap on p' (no drop on overload).
        p = DualPi2Controller::Params();
        p.maxProbBase = 0.5;
        DualPi2Controller capped(p);
        capped.Update(Seconds(2));
        NS_TEST_ASSERT_MSG_EQ(capped.GetProbBase(), 0.5, "capped at maxProbBase");
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief Native L AQM shapes and recur().
 */
class DualPi2ControllerLaqmTestCase : public TestCase
{
  public:
    DualPi2ControllerLaqmTestCase()
        : TestCase("Ramp, step and recur()")
    {
    }

  private:
    void DoRun() override
    {
        const Time minTh = MicroSeconds(800);
        const Time range = MicroSeconds(400);
        NS_TEST_ASSERT_MSG_EQ(DualPi2Controller::RampProb(MicroSeconds(700), minTh, range),
                              0.0,
                              "below");
        NS_TEST_ASSERT_MSG_EQ(DualPi2Controller::RampProb(minTh, minTh, range), 0.0, "at minTh");
        NS_TEST_ASSERT_MSG_EQ_TOL(DualPi2Controller::RampProb(MicroSeconds(900), minTh, range),
                                  0.25,
                                  1e-12,
                                  "on the ramp");
        NS_TEST_ASSERT_MSG_EQ(DualPi2Controller::RampProb(MicroSeconds(1200), minTh, range),
                              1.0,
                              "top");
        NS_TEST_ASSERT_MSG_EQ(DualPi2Controller::RampProb(Seconds(1), minTh, range), 1.0, "above");
        NS_TEST_ASSERT_MSG_EQ(DualPi2Controller::RampProb(minTh, minTh, Time(0)),
                              1.0,
                              "zero range is a step");
        NS_TEST_ASSERT_MSG_EQ(DualPi2Controller::StepProb(MilliSeconds(1), MilliSeconds(1)),
                              0.0,
                              "at the step");
        NS_TEST_ASSERT_MSG_EQ(DualPi2Controller::StepProb(MicroSeconds(1001), MilliSeconds(1)),
                              1.0,
                              "above the step");
        double count = 0.0;
        int fired = 0;
        for (int i = 1; i <= 12; ++i)
        {
            const bool f = DualPi2Controller::Recur(count, 0.25);
            fired += f ? 1 : 0;
            NS_TEST_ASSERT_MSG_EQ(f, (i % 4 == 0), "every 4th at 0.25");
        }
        NS_TEST_ASSERT_MSG_EQ(fired, 3, "3 of 12");
        count = 0.0;
        NS_TEST_ASSERT_MSG_EQ(DualPi2Controller::Recur(count, 1.0), true, "1 always fires");
        NS_TEST_ASSERT_MSG_EQ(DualPi2Controller::Recur(count, 0.0), false, "0 never fires");
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief Test suite for DualPi2Controller.
 */
class DualPi2ControllerTestSuite : public TestSuite
{
  public:
    DualPi2ControllerTestSuite()
        : TestSuite("dual-pi2-controller", Type::UNIT)
    {
        AddTestCase(new DualPi2ControllerGainsTestCase(), Duration::QUICK);
        AddTestCase(new DualPi2ControllerUpdateTestCase(), Duration::QUICK);
        AddTestCase(new DualPi2ControllerLaqmTestCase(), Duration::QUICK);
    }
};

static DualPi2ControllerTestSuite g_dualPi2ControllerTestSuite; //!< static instance
