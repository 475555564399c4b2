/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef DUAL_PI2_CONTROLLER_H
#define DUAL_PI2_CONTROLLER_H

#include "ns3/nstime.h"

#include <algorithm>
#include <cstdint>

namespace ns3
{

/**
 * \ingroup aqm-llm
 * \brief The PI2 base controller and the coupling of RFC 9332 (DualQ Coupled AQM), as plain
 * state and arithmetic.
 *
 * The controller holds the base probability p' and updates it once per Tupdate from a queue
 * delay sample (RFC 9332, Appendix A):
 *
 * \code
 *   p' = p' + alpha * (qdelay - target) + beta * (qdelay - qdelay_prev)    clamped to [0, pMax]
 *   p_C  = p'^2                (Classic drop/mark probability, "squared")
 *   p_CL = min(k * p', 1)      (coupled L4S marking probability)
 * \endcode
 *
 * qdelay is the Classic queue's head-of-line sojourn (RFC 9332 Appendix A.1, the default) or
 * the larger of the two queues' head-of-line sojourns (DelaySource::MAX, as Linux
 * sch_dualpi2 does). Overload: p_Cmax = min(1/k^2, 1); the Classic queue is overloaded
 * when p_C >= p_Cmax, and the L queue is saturated when k * p' >= 1 (p_CL reached
 * p_Lmax = 1). For k >= 1 both happen at the same p' = 1/k.
 *
 * It is independent of QueueDisc and of the simulator: time comes in as arguments, so that
 * DualPi2QueueDisc uses it and another queue disc (L4sLlmQueueDisc) can run it as its fallback
 * or as a teacher in shadow, on its own queue delays.
 *
 * Gains: the default Params are those RFC 9332 Appendix A derives from target = 15 ms and
 * RTT_max = 100 ms: Tupdate = min(target, RTT_max/3) = 15 ms, alpha = 0.1 * Tupdate / RTT_max^2
 * = 0.15 Hz, beta = 0.3 / RTT_max = 3.0 Hz. Linux sch_dualpi2's defaults (16 ms, 0.16 Hz,
 * 3.2 Hz) are available as Params::Linux().
 */
class DualPi2Controller
{
  public:
    /// Which queue delay drives the PI controller.
    enum class DelaySource
    {
        CLASSIC, //!< the Classic queue's delay (RFC 9332 Appendix A.1)
        MAX,     //!< max(Classic delay, L delay) (Linux sch_dualpi2)
    };

    /// Controller parameters.
    struct Params
    {
        Time target{MilliSeconds(15)};  //!< Classic queue delay target
        Time tupdate{MilliSeconds(15)}; //!< update interval (the caller's timer period)
        double alpha{0.15};             //!< integral gain [Hz]
        double beta{3.0};               //!< proportional gain [Hz]
        double k{2.0};                  //!< coupling factor
        DelaySource delaySource{DelaySource::CLASSIC}; //!< which delay drives p'
        double maxProbBase{1.0};        //!< upper clamp of p' (1, or 1/k to cap p_CL at 1)

        /**
         * \brief Gains derived as in RFC 9332 Appendix A.
         * \param target queue delay target
         * \param rttMax worst-case RTT expected
         * \param k coupling factor
         * \return Tupdate = min(target, rttMax/3), alpha = 0.1 Tupdate / rttMax^2,
         *         beta = 0.3 / rttMax
         */
        static Params Rfc9332(Time target = MilliSeconds(15),
                              Time rttMax = MilliSeconds(100),
                              double k = 2.0);
        /// \return Linux sch_dualpi2's defaults: 15 ms, 16 ms, 0.16 Hz, 3.2 Hz, k = 2
        static Params Linux();
    };

    DualPi2Controller();
    /// \param params the parameters
    explicit DualPi2Controller(const Params& params);

    /// \param params new parameters (state is kept; call Reset() to start over)
    void SetParams(const Params& params);
    /// \return the parameters
    const Params& GetParams() const;

    /// Back to p' = 0 and a previous delay of 0.
    void Reset();

    /**
     * \brief One PI2 update (call every Tupdate).
     * \param queueDelayC the Classic queue's delay (head-of-line sojourn; 0 if empty)
     * \param queueDelayL the L queue's delay (used only with DelaySource::MAX)
     * \return the new base probability p'
     */
    double Update(Time queueDelayC, Time queueDelayL = Time(0));

    /// \return the base probability p'
    double GetProbBase() const;
    /// \return p_C = p'^2, the Classic drop/mark probability
    double GetProbC() const;
    /// \return p_CL = min(k * p', 1), the coupled L4S marking probability
    double GetProbCL() const;
    /// \return k * p', not clamped
    double GetCoupledProbRaw() const;
    /// \return p_Cmax = min(1/k^2, 1)
    double GetProbCMax() const;
    /// \return whether p_C >= p_Cmax: Classic ECN-capable packets are dropped, not marked
    bool IsClassicOverloaded() const;
    /// \return whether k * p' >= 1: L packets are subject to Classic drop (if enabled) and
    ///         every remaining one is marked
    bool IsLSaturated() const;
    /**
     * \brief The combining function of RFC 9332: p_L = max(p'_L, p_CL).
     * \param nativeProbL the L queue's native marking probability p'_L
     * \return p_L
     */
    double GetProbL(double nativeProbL) const;

    /// \return the delay used at the last update
    Time GetLastDelay() const;
    /// \return the number of updates since construction or Reset()
    uint64_t GetUpdateCount() const;
    /// \param p set p' directly (clamped to [0, maxProbBase]); warm starts and tests
    void SetProbBase(double p);

    /// What RFC 9332's dequeue rule does with one packet, and why.
    enum class PacketRule
    {
        FORWARD,               //!< sent unchanged
        NATIVE_MARK,           //!< L: marked, native p'_L >= p_CL
        COUPLED_MARK,          //!< L: marked, coupled p_CL > p'_L
        OVERLOAD_L_MARK,       //!< L: marked while the L queue is saturated (p_L = 1)
        OVERLOAD_L_DROP,       //!< L: dropped with p_C while saturated (drop on overload)
        CLASSIC_MARK,          //!< C: ECT(0) marked with p_C
        CLASSIC_DROP,          //!< C: dropped with p_C (not ECT(0), or ECN off)
        OVERLOAD_CLASSIC_DROP, //!< C: ECT(0) dropped with p_C, p_C >= p_Cmax
    };

    /// Which decision a draw is for (a caller may keep one recur() accumulator per kind).
    enum class DrawKind
    {
        L_MARK,          //!< the L marking decision with p_L
        L_OVERLOAD_DROP, //!< the L overload drop with p_C
        C_SIGNAL,        //!< the C drop/mark decision with p_C
    };

    /**
     * \brief RFC 9332's rule for one dequeued packet, on the current p' (the one place the
     * rule is written: DualPi2QueueDisc, the L4sLlmQueueDisc fallback and the dualpi2 teacher
     * call it, each with its own draws).
     *
     * L: saturated (k p' >= 1): dropped with p_C if \p dropOnOverload, else marked; otherwise
     * marked with p_L = max(p'_L, p_CL). C: with p_C, ECT(0) packets are marked when
     * \p useEcn and not overloaded, every other one is dropped.
     *
     * \param isL the packet is in the L queue
     * \param ect0 its ECN field is ECT(0)
     * \param useEcn Classic ECT(0) packets may be marked
     * \param nativeProbL the L queue's native p'_L for this packet (0 when suppressed)
     * \param dropOnOverload L packets are dropped with p_C while saturated
     * \param draw callable (double p, DrawKind kind) -> bool: true with probability p
     * \param probL if not null, set to the p_L applied to an L packet
     * \return the verdict and its reason (a mark on a CE packet is for the caller to skip)
     */
    template <typename Draw>
    PacketRule DecidePacket(bool isL,
                            bool ect0,
                            bool useEcn,
                            double nativeProbL,
                            bool dropOnOverload,
                            Draw&& draw,
                            double* probL = nullptr) const
    {
        if (isL)
        {
            if (IsLSaturated())
            {
                if (probL != nullptr)
                {
                    *probL = 1.0;
                }
                return dropOnOverload && DropsOverloadedL(draw) ? PacketRule::OVERLOAD_L_DROP
                                                                : PacketRule::OVERLOAD_L_MARK;
            }
            const double pCL = GetProbCL();
            const double pL = std::max(nativeProbL, pCL);
            if (probL != nullptr)
            {
                *probL = pL;
            }
            if (!draw(pL, DrawKind::L_MARK))
            {
                return PacketRule::FORWARD;
            }
            return nativeProbL >= pCL ? PacketRule::NATIVE_MARK : PacketRule::COUPLED_MARK;
        }
        if (!draw(GetProbC(), DrawKind::C_SIGNAL))
        {
            return PacketRule::FORWARD;
        }
        if (!ect0 || !useEcn)
        {
            return PacketRule::CLASSIC_DROP;
        }
        return IsClassicOverloaded() ? PacketRule::OVERLOAD_CLASSIC_DROP : PacketRule::CLASSIC_MARK;
    }

    /**
     * \brief The overload rule alone: an L packet is dropped with p_C while the L queue is
     * saturated (k p' >= 1). Another actor's decisions stay under it (L4sLlmQueueDisc).
     * \param draw as for DecidePacket (one L_OVERLOAD_DROP draw, only when saturated)
     * \return whether the L packet is dropped
     */
    template <typename Draw>
    bool DropsOverloadedL(Draw&& draw) const
    {
        return IsLSaturated() && draw(GetProbC(), DrawKind::L_OVERLOAD_DROP);
    }

    /// \return whether \p rule drops the packet
    static bool IsDrop(PacketRule rule);
    /// \return whether \p rule marks the packet
    static bool IsMark(PacketRule rule);

    /**
     * \brief The L queue's native linear ramp (RFC 9332 Appendix A): 0 below minTh,
     * 1 at and above minTh + range, linear in between.
     * \param sojourn the packet's sojourn time
     * \param minTh start of the ramp
     * \param range width of the ramp (0: a step at minTh)
     * \return p'_L
     */
    static double RampProb(Time sojourn, Time minTh, Time range);
    /**
     * \brief A step: 1 if sojourn > threshold, else 0.
     * \param sojourn the packet's sojourn time
     * \param threshold the step threshold
     * \return p'_L
     */
    static double StepProb(Time sojourn, Time threshold);
    /**
     * \brief Deterministic alternative to a random draw (recur() of RFC 9332 Appendix A):
     * adds \p likelihood to \p count and fires each time count reaches 1.
     * \param count the per-decision accumulator
     * \param likelihood the probability
     * \return whether to mark/drop
     */
    static bool Recur(double& count, double likelihood);

  private:
    Params m_params;        //!< parameters
    double m_probBase{0.0}; //!< p'
    double m_prevDelay{0.0}; //!< previous delay sample [s]
    uint64_t m_updates{0};  //!< number of updates
};

} // namespace ns3

#endif /* DUAL_PI2_CONTROLLER_H */
