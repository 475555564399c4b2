/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_TEACHERS_H
#define AQM_TEACHERS_H

#include "agent-messages.h"
#include "dual-pi2-controller.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ns3
{

/**
 * \ingroup aqm-llm
 * \brief A teacher: a classic AQM controller that decides an L4sLlmQueueDisc epoch in the
 * agent's own action space, from exactly the request the agent sees.
 *
 * Teachers generate the experience pool: in Teacher mode one of them acts on the queue disc;
 * in Record mode one controller acts and every teacher runs in shadow on the same requests, and
 * each one's reply is logged. Because a teacher's decision is a Reply (per-packet actions for
 * the described packets plus per-class epoch probabilities) and the queue disc applies it the
 * way it applies the agent's, the logged action of the acting controller is exactly what was
 * done.
 *
 * A teacher reads: the last point of the L and C sojourn series (the head-of-line sojourn at
 * the epoch; the first described packet of a class, when there is one, gives that class's
 * head sojourn instead), the queue bytes, the departure rate and the packet descriptors.
 * Per-packet random decisions use a hash of (packet uid, epoch, teacher name), so teachers in
 * shadow draw from no simulator random stream and leave the run unchanged.
 *
 * Names: "dualpi2" (RFC 9332 PI2 with coupling and the native L ramp), "pie-step" (RFC 8033
 * PIE on C, a step on L), "codel-like" (the CoDel control law on each queue: C target 5 ms /
 * interval 100 ms, L target 1 ms / interval 16 ms). "NAME@S" is a perturbed variant: every
 * delay target and threshold of NAME is multiplied by S (S > 0; 0.5 is more aggressive,
 * 2 more lenient).
 */
class AqmTeacher
{
  public:
    virtual ~AqmTeacher();

    /**
     * \brief Make a teacher by name.
     * \param spec "NAME" or "NAME@SCALE"
     * \param error set to a message naming the allowed names when \p spec is unknown
     * \return the teacher, or nullptr
     */
    static std::unique_ptr<AqmTeacher> Create(const std::string& spec, std::string* error = nullptr);
    /// \return the base names: dualpi2, pie-step, codel-like
    static std::vector<std::string> BaseNames();
    /// \return the default shadow set: each base name at scale 1, 0.5 and 2
    static std::vector<std::string> DefaultSet();
    /// \return the names in a comma-separated list (spaces ignored); empty items skipped
    static std::vector<std::string> ParseList(const std::string& list);

    /// \return the name this teacher was created with ("pie-step@0.5")
    const std::string& GetName() const;
    /// \return the perturbation scale (1 for the plain teacher)
    double GetScale() const;

    /// Forget all controller state.
    virtual void Reset() = 0;

    /**
     * \brief Decide one epoch.
     * \param request the request of the epoch (as the agent gets it)
     * \param intervalSeconds the decision interval
     * \param reply filled with status ok, the request's seq, one action per described
     *        packet and the epoch probabilities
     */
    virtual void Decide(const agent::Request& request,
                        double intervalSeconds,
                        agent::Reply& reply) = 0;

  protected:
    /**
     * \param name the full name
     * \param scale the perturbation scale
     */
    AqmTeacher(std::string name, double scale);

    /// Fill \p reply with status ok, the seq echoed, the uids copied, all actions forward, p = 0.
    static void StartReply(const agent::Request& request, agent::Reply& reply);
    /// \return a deterministic number in [0, 1) for packet \p uid in \p epoch
    double Uniform(uint64_t uid, uint64_t epoch) const;
    /// \return the head-of-line sojourn of class \p trafficClass at the epoch, s
    static double HeadSojourn(const agent::Request& request, uint8_t trafficClass);
    /// \return the last point of series \p index (0 if absent)
    static double Last(const agent::Request& request, uint32_t index);
    /**
     * \return the expected number of packets of \p trafficClass dequeued in the next
     * \p seconds (departure rate, mean described size, class share among the described
     * packets), at least 1
     */
    static double ExpectedPackets(const agent::Request& request,
                                  uint8_t trafficClass,
                                  double seconds);

  private:
    std::string m_name; //!< full name
    double m_scale;     //!< perturbation scale
    uint64_t m_salt;    //!< hash of the name
};

/**
 * \ingroup aqm-llm
 * \brief RFC 9332 DualPI2 as a teacher: a DualPi2Controller updated once per epoch from the
 * C head sojourn (target 15 ms x S, alpha = 0.1 T / RTT_max^2 and beta = 0.3 / RTT_max with
 * RTT_max 100 ms and T the decision interval, k = 2). C packets: signal with p_C = p'^2 (mark
 * ECT(0), drop Not-ECT; drop both on overload). L packets: mark with max(ramp(sojourn), p_CL),
 * ramp 800 us x S .. 1200 us x S; on saturation drop with p_C and mark the rest. Epoch: p_L from
 * the L head sojourn.
 */
class DualPi2Teacher : public AqmTeacher
{
  public:
    /// \param name full name \param scale perturbation scale
    DualPi2Teacher(std::string name, double scale);
    void Reset() override;
    void Decide(const agent::Request& request, double intervalSeconds, agent::Reply& reply) override;
    /// \return the controller (tests)
    const DualPi2Controller& GetController() const;

  private:
    DualPi2Controller m_controller; //!< PI2 state
};

/**
 * \ingroup aqm-llm
 * \brief PIE (RFC 8033) on the C queue with a step on the L queue. PIE: target 15 ms x S,
 * alpha 0.125 (per 15 ms, scaled to the interval), beta 1.25, the RFC's auto-tuning of the gains
 * by p, decay when the queue stays empty, burst allowance 150 ms, no early drop while the old
 * delay is under target/2 with p < 0.2 or the queue holds under two 1500 B packets; ECN marks
 * below p = 0.1, drops above. L: mark every packet whose sojourn exceeds 1 ms x S; epoch
 * p_L is 1 if the L head sojourn exceeds it, else 0.
 */
class PieStepTeacher : public AqmTeacher
{
  public:
    /// \param name full name \param scale perturbation scale
    PieStepTeacher(std::string name, double scale);
    void Reset() override;
    void Decide(const agent::Request& request, double intervalSeconds, agent::Reply& reply) override;
    /// \return PIE's drop probability (tests)
    double GetProb() const;

  private:
    double m_p{0.0};              //!< PIE's probability
    double m_oldDelay{0.0};       //!< previous C delay, s
    double m_burstAllowance{0.0}; //!< remaining burst allowance, s
    bool m_started{false};        //!< burst allowance initialised
};

/**
 * \ingroup aqm-llm
 * \brief The CoDel control law on each queue, expressed per epoch: a queue whose head sojourn
 * stays above target for an interval enters the signalling state; while in it, signals are due
 * at interval / sqrt(count) spacing, and the number due in the coming epoch, divided by the
 * packets of that class expected in it, is the epoch probability. Described packets at or above
 * target are signalled with that probability. C: target 5 ms x S, interval 100 ms x S (mark
 * ECT(0), drop Not-ECT). L: target 1 ms x S, interval 16 ms x S (mark).
 */
class CoDelLikeTeacher : public AqmTeacher
{
  public:
    /// \param name full name \param scale perturbation scale
    CoDelLikeTeacher(std::string name, double scale);
    void Reset() override;
    void Decide(const agent::Request& request, double intervalSeconds, agent::Reply& reply) override;

    /// CoDel state of one queue.
    struct State
    {
        bool dropping{false};      //!< in the signalling state
        uint32_t count{0};         //!< signals in this signalling state
        uint32_t lastCount{0};     //!< count when the last signalling state ended
        double firstAbove{0.0};    //!< when the delay will have been above target an interval (0: not above)
        double dropNext{0.0};      //!< time of the next signal
    };

  private:
    /**
     * \brief Advance one queue's state to \p now and count the signals due before now + T.
     * \return the number of signals due in [now, now + T)
     */
    static uint32_t Advance(State& s,
                            double delay,
                            double now,
                            double epochSeconds,
                            double target,
                            double interval);

    State m_c; //!< C queue state
    State m_l; //!< L queue state
};

} // namespace ns3

#endif /* AQM_TEACHERS_H */
