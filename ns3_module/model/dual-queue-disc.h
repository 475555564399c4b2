/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_DUAL_QUEUE_DISC_H
#define AQM_LLM_DUAL_QUEUE_DISC_H

#include "dual-pi2-controller.h"
#include "dual-queue-common.h"

#include "ns3/nstime.h"
#include "ns3/queue-disc.h"
#include "ns3/traced-callback.h"

#include <cstdint>
#include <string>
#include <vector>

namespace ns3
{

class UniformRandomVariable;

/**
 * \ingroup aqm-llm
 * \brief The L/C dual queue of RFC 9332, shared by DualPi2QueueDisc and L4sLlmQueueDisc:
 * two DualQueueFifo internal queues under one buffer, the classifier at enqueue (ECT(1) and
 * CE to L, Not-ECT and ECT(0) to C; a packet that does not fit the shared MaxSize is dropped,
 * FORCED_DROP), the scheduler between the queues and the service instants behind a device
 * served in bursts (ExcludeBlockedTime, see DualPi2QueueDisc) at dequeue.
 *
 * A subclass decides what happens to each packet the scheduler takes (DoDequeue loops over
 * TakeNext). The attributes both discs have (buffer, ECN, scheduler weight, blocked time, the
 * PI2 controller's target, gains and coupling, the L ramp) and the SojournL/SojournC trace
 * sources live here, and each subclass declares them on its own TypeId with AddDualQueueAttributes
 * (Config::SetDefault finds an attribute only on the TypeId that declares it).
 */
class DualQueueDisc : public QueueDisc
{
  public:
    /// \return the object TypeId
    static TypeId GetTypeId();

    ~DualQueueDisc() override;

    static constexpr std::size_t L_QUEUE = 0; //!< index of the L queue
    static constexpr std::size_t C_QUEUE = 1; //!< index of the C queue
    /// Reason of a drop at enqueue: the shared buffer (MaxSize) is full
    static constexpr const char* FORCED_DROP = "Forced drop";
    /// Reason of a drop at dequeue: an L packet waited longer than LSojournLimit
    static constexpr const char* L_SOJOURN_LIMIT_DROP = "L4S sojourn limit drop";

    /// \return the head-of-line sojourn of internal queue \p i (0 if empty)
    Time HeadSojourn(std::size_t i) const;

  protected:
    DualQueueDisc();

    /// Names and defaults that differ between the subclasses' common attributes.
    struct AttributeStyle
    {
        std::string gainPrefix; //!< prefix of Target, Alpha and Beta ("Fallback": FallbackAlpha)
        std::string controller; //!< the PI2 controller in the help texts ("the fallback's PI2")
        double alpha;           //!< default integral gain, Hz
        double beta;            //!< default proportional gain, Hz
    };

    /**
     * \brief Declare the common attributes and trace sources on a subclass's TypeId.
     * \param tid the subclass's TypeId
     * \param style the names and defaults that differ
     * \return \p tid
     */
    static TypeId AddDualQueueAttributes(TypeId tid, const AttributeStyle& style);

    /**
     * \param uv the random stream
     * \param p a probability
     * \return true with probability \p p (no draw for p <= 0 or p >= 1)
     */
    static bool Draw(UniformRandomVariable& uv, double p);

    /// A packet the scheduler took off one of the queues.
    struct Dequeued
    {
        Ptr<QueueDiscItem> item;       //!< the packet
        uint64_t id{0};                //!< the id it got at enqueue (1, 2, ...)
        bool fromL{false};             //!< it came from the L queue
        uint8_t ecn{0};                //!< its ECN field
        Time sojourn;                  //!< time since enqueue
        Time markDelay;                //!< with ExcludeBlockedTime: sojourn up to the previous
                                       //!< service instant; else the sojourn
        std::size_t lPacketsBefore{0}; //!< packets in the L queue before this dequeue
    };

    /// State of one DoDequeue call: the service instant is noted once, at its first packet.
    struct DequeuePass
    {
        Time now;                 //!< the time of the call
        bool serviceKnown{false}; //!< the service instant has been noted
        Time prevService;         //!< the service instant before this one
    };

    /**
     * \param tupdate the controller's update interval
     * \return the PI2 controller's parameters from the common attributes (target, gains, k;
     *         delay source and p' clamp at their defaults: CLASSIC, 1)
     */
    DualPi2Controller::Params GetControllerParams(Time tupdate) const;

    /**
     * \brief The common part of CheckConfig: no classes, no packet filters, two DualQueueFifo
     * internal queues (added, each as large as MaxSize, if there are none), a positive
     * CouplingFactor. Logs the problem.
     * \param name the queue disc's name in the log
     * \return whether the configuration is valid
     */
    bool CheckDualQueues(const std::string& name);

    /**
     * \brief Start over (InitializeParams): scheduler credit, service instants, packet ids.
     * \param type scheduler kind
     * \param classicWeight C's byte share (weighted scheduler)
     * \param timeShift the time shift (time-shifted scheduler)
     */
    void ResetDualQueue(dualq::DualQueueScheduler::Type type, double classicWeight, Time timeShift);

    /**
     * \brief Classify and enqueue \p item with the next id, timestamped now; drop it
     * (FORCED_DROP) if it does not fit the shared buffer.
     * \param item the packet
     * \return whether it was enqueued
     */
    bool EnqueueClassified(Ptr<QueueDiscItem> item);

    /**
     * \brief Take the next packet in scheduler order (and fire SojournL/SojournC).
     * \param pass the DoDequeue call's state
     * \param out the packet and its facts
     * \return false if both queues are empty
     */
    bool TakeNext(DequeuePass& pass, Dequeued& out);

    /// A queued packet.
    struct Queued
    {
        Ptr<QueueDiscItem> item; //!< the packet
        uint64_t id{0};          //!< its id
        bool fromL{false};       //!< it is in the L queue
    };

    /**
     * \param n at most this many
     * \param now the current time
     * \return the first \p n queued packets in the order the scheduler would send them if
     *         nothing else arrived
     */
    std::vector<Queued> PeekInSendOrder(uint32_t n, Time now) const;

    /**
     * \brief The L queue's own overload rule (LSojournLimit, off when 0).
     * \param d a dequeued packet
     * \return whether it is an L packet that waited longer than the limit (to be dropped)
     */
    bool ExceedsLSojournLimit(const Dequeued& d) const;

    /// \return internal queue \p i
    Ptr<DualQueueFifo> Fifo(std::size_t i) const;
    /// \return the latest service instant
    Time GetLastServiceInstant() const;

    // Common attributes
    // (in-class values: the attribute defaults, for a subclass that would not declare them)
    bool m_useEcn{true};                //!< mark ECT(0) C packets instead of dropping them
    Time m_target{MilliSeconds(15)};    //!< PI2 target
    double m_alpha{0.15};               //!< PI2 integral gain [Hz]
    double m_beta{3.0};                 //!< PI2 proportional gain [Hz]
    double m_k{2.0};                    //!< coupling factor
    Time m_minTh{MicroSeconds(800)};    //!< L ramp start
    Time m_range{MicroSeconds(400)};    //!< L ramp width
    double m_classicWeight{0.1};        //!< C's byte share (weighted scheduler)
    bool m_excludeBlockedTime{false};   //!< Wi-Fi: exclude the last device stall from L marking
    Time m_lSojournLimit{0};            //!< L packets that waited longer are dropped (0: off)

  private:
    TracedCallback<Time> m_sojournL; //!< sojourn of each dequeued L packet
    TracedCallback<Time> m_sojournC; //!< sojourn of each dequeued C packet
    dualq::DualQueueScheduler m_scheduler;  //!< scheduler between L and C
    dualq::ServiceInstantTracker m_service; //!< service instants
    uint64_t m_lastId{0};                   //!< last id given at enqueue
};

} // namespace ns3

#endif /* AQM_LLM_DUAL_QUEUE_DISC_H */
