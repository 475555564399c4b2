/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef DUAL_PI2_QUEUE_DISC_H
#define DUAL_PI2_QUEUE_DISC_H

#include "dual-pi2-controller.h"
#include "dual-queue-disc.h"

#include "ns3/event-id.h"
#include "ns3/nstime.h"
#include "ns3/queue-disc.h"
#include "ns3/traced-callback.h"
#include "ns3/traced-value.h"

class DualPi2QueueDiscTestPeer; // unit tests (ns3_module/test/dual-pi2-queue-disc-test-suite.cc)

namespace ns3
{

class UniformRandomVariable;

/**
 * \ingroup aqm-llm
 * \brief DualQ Coupled AQM with a PI2 base AQM (RFC 9332, "DualPI2").
 *
 * Two FIFO queues share one buffer (MaxSize, in packets or bytes):
 * - the L queue (internal queue L_QUEUE = 0) takes ECT(1) and CE packets
 *   (ECN field modulo 2 == 1), the L4S identifier;
 * - the C queue (internal queue C_QUEUE = 1) takes Not-ECT and ECT(0) packets.
 *
 * Every Tupdate a DualPi2Controller updates the base probability p' from the Classic queue's
 * head-of-line sojourn (or the max of both queues, BaseDelay = Max). At dequeue:
 * - C: with p_C = p'^2 a packet is marked CE if ECT(0) and UseEcn, else dropped; on
 *   overload (p_C >= p_Cmax = 1/k^2) ECT(0) packets are dropped too.
 * - L: with p_L = max(p'_L, p_CL), p_CL = min(k p', 1), the packet is marked CE; p'_L is the
 *   native L AQM on the packet's sojourn: a ramp (MinTh 800 us, Range 400 us, RFC 9332), a
 *   step (StepThreshold, 1 ms, like Linux), or none. Native marking is suppressed while the L
 *   queue holds at most ThLen packets (counting the one dequeued). Once p_CL saturates
 *   (k p' >= 1) the L queue is overloaded: with DropOnOverload (default) L packets are dropped
 *   with p_C like Classic ones and the rest are marked; without it, all are marked and p' is
 *   capped at 1/k (as Linux does).
 *
 * Scheduler between the queues (Scheduler attribute): a weighted (credit) scheduler that gives
 * the C queue ClassicWeight of the bytes while both are backlogged (Linux's "classic
 * protection", default 10%), or a time-shifted FIFO that serves C only when its head has
 * waited TimeShift longer than the L head.
 *
 * Gain defaults: RFC 9332 Appendix A's values derived from target 15 ms and RTT_max 100 ms
 * (Tupdate 15 ms, Alpha 0.15 Hz, Beta 3.0 Hz), because they follow from stated design inputs
 * by the RFC's formulas and this module cites the RFC as its reference; Linux sch_dualpi2 uses
 * 16 ms, 0.16 Hz and 3.2 Hz (set Tupdate/Alpha/Beta to get those; see
 * DualPi2Controller::Params::Linux()). The two sets differ by under 7%.
 *
 * Wi-Fi (ExcludeBlockedTime): behind a Wi-Fi AP the queue disc is served in bursts: it is
 * stopped while the MAC queue is full and drained at the instant the MAC frees room (each
 * TXOP/A-MPDU). A packet that arrives during such a stall waits for the rest of it whatever
 * the backlog, so its sojourn overstates the queue the AQM controls and a 1 ms L threshold
 * marks nearly every packet (starving DCTCP). With ExcludeBlockedTime the sojourn used for the
 * native L marking excludes the time the packet spent in the last stall before its dequeue:
 * it is measured only up to the previous service instant (the last earlier time at which this
 * queue disc was able to dequeue), i.e. max(0, t_prevService - t_enqueue). A packet that was
 * already queued at an earlier service opportunity and not sent then was held back by backlog,
 * and that waiting counts; the final wait for the device to accept packets again does not. On
 * a link that serves packet by packet (point-to-point) this removes at most one transmission
 * time. A dequeue made while the item's device transmit queue is stopped (MqQueueDisc children
 * on multi-queue devices dequeue and requeue) is not a service instant. The PI controller and
 * the coupled marking use the raw sojourn.
 *
 * Marks and drops are counted by reason (QueueDisc::Stats), with the reasons below.
 */
class DualPi2QueueDisc : public DualQueueDisc
{
  public:
    /// \return the object TypeId
    static TypeId GetTypeId();

    DualPi2QueueDisc();
    ~DualPi2QueueDisc() override;

    /// The L queue's native AQM.
    enum LMarking
    {
        L_MARKING_RAMP,  //!< linear ramp MinTh..MinTh+Range (RFC 9332)
        L_MARKING_STEP,  //!< step at StepThreshold (Linux sch_dualpi2)
        L_MARKING_NONE,  //!< no native marking: p_L = p_CL
    };

    /// The scheduler between the two queues.
    enum SchedulerType
    {
        SCHEDULER_WEIGHTED,     //!< byte-credit weighted round robin, C gets ClassicWeight
        SCHEDULER_TIME_SHIFTED, //!< time-shifted FIFO (TimeShift)
    };

    /// Which queue delay drives the base PI controller.
    enum BaseDelaySource
    {
        BASE_DELAY_CLASSIC, //!< the C queue's head-of-line sojourn (RFC 9332 A.1)
        BASE_DELAY_MAX,     //!< the max of both queues' head-of-line sojourns (Linux)
    };

    // Reasons for drops and marks (QueueDisc::Stats by reason)
    static constexpr const char* UNFORCED_CLASSIC_DROP =
        "Unforced classic drop"; //!< C packet, p_C, not ECN-capable (or UseEcn false)
    static constexpr const char* OVERLOAD_CLASSIC_DROP =
        "Overload classic drop"; //!< C packet, p_C, ECN-capable but p_C >= p_Cmax
    static constexpr const char* OVERLOAD_L4S_DROP =
        "Overload L4S drop"; //!< L packet, p_C, L queue saturated and DropOnOverload
    static constexpr const char* UNFORCED_CLASSIC_MARK =
        "Unforced classic mark"; //!< C packet (ECT(0)) marked with p_C
    static constexpr const char* L4S_NATIVE_MARK =
        "L4S native mark"; //!< L packet marked, native p'_L >= p_CL
    static constexpr const char* L4S_COUPLED_MARK =
        "L4S coupled mark"; //!< L packet marked, coupled p_CL > p'_L
    static constexpr const char* OVERLOAD_L4S_MARK =
        "Overload L4S mark"; //!< L packet marked while the L queue is saturated

    /**
     * \brief Use fixed random variable streams.
     * \param stream first stream index to use
     * \return the number of stream indices assigned (1)
     */
    int64_t AssignStreams(int64_t stream);

    /// \return the PI2 controller (p', p_C, p_CL, overload state)
    const DualPi2Controller& GetController() const;
    /// \return the current head-of-line sojourn of the L queue (0 if empty)
    Time GetQueueDelayL() const;
    /// \return the current head-of-line sojourn of the C queue (0 if empty)
    Time GetQueueDelayC() const;

  protected:
    void DoDispose() override;

  private:
    friend class ::DualPi2QueueDiscTestPeer;

    bool DoEnqueue(Ptr<QueueDiscItem> item) override;
    Ptr<QueueDiscItem> DoDequeue() override;
    bool CheckConfig() override;
    void InitializeParams() override;

    /// The periodic PI2 update.
    void UpdateProbability();
    /**
     * \brief One probabilistic decision.
     * \param p the probability
     * \param count the accumulator used with DeterministicMarking
     * \return true with probability p
     */
    bool Decide(double p, double& count);

    // Attributes
    Time m_tUpdate;                  //!< PI2 update interval
    BaseDelaySource m_baseDelay;     //!< which delay drives p'
    LMarking m_lMarking;             //!< native L AQM
    Time m_stepThreshold;            //!< step threshold
    uint32_t m_thLen;                //!< native marking only if the L queue held > ThLen packets
    bool m_dropOnOverload;           //!< L packets subject to Classic drop on overload
    SchedulerType m_schedulerType;   //!< scheduler type
    Time m_timeShift;                //!< time shift of the time-shifted scheduler
    bool m_deterministic;            //!< recur() instead of random draws

    // State
    DualPi2Controller m_controller;  //!< PI2 controller
    EventId m_updateEvent;           //!< next PI2 update
    Ptr<UniformRandomVariable> m_uv; //!< random draws
    double m_countL{0.0};            //!< recur() accumulator, L marking
    double m_countLDrop{0.0};        //!< recur() accumulator, L overload drop
    double m_countC{0.0};            //!< recur() accumulator, C

    // Traces
    TracedValue<double> m_probBase{0.0}; //!< p'
    TracedValue<double> m_probC{0.0};    //!< p_C
    TracedValue<double> m_probCL{0.0};   //!< p_CL
    TracedValue<double> m_probL{0.0};    //!< p_L applied to the last L packet
    TracedCallback<Time> m_lMarkingDelay; //!< the delay the native L AQM saw
};

} // namespace ns3

#endif /* DUAL_PI2_QUEUE_DISC_H */
