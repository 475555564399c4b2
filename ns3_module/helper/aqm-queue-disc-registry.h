/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_QUEUE_DISC_REGISTRY_H
#define AQM_QUEUE_DISC_REGISTRY_H

#include "ns3/data-rate.h"
#include "ns3/nstime.h"
#include "ns3/queue-disc.h"
#include "ns3/queue-size.h"
#include "ns3/traffic-control-helper.h"

#include <string>
#include <vector>

namespace ns3
{

/**
 * \ingroup aqm-llm
 * \brief What every queue disc under comparison is configured with.
 *
 * The same limit and ECN choice apply to every name, so that a comparison changes
 * the algorithm and nothing else.
 */
struct AqmQueueDiscOptions
{
    QueueSize limit{"1000p"};       //!< MaxSize of the queue disc (packets or bytes)
    bool useEcn{true};              //!< mark ECN-capable packets instead of dropping them
    Time l4sThreshold{MilliSeconds(1)}; //!< CE threshold for ECT(1) in the *-l4s variants
    DataRate linkRate{"100Mbps"};   //!< bottleneck rate (RED's adaptive parameters)
    Time linkDelay{MilliSeconds(10)}; //!< bottleneck one-way delay (RED's adaptive parameters)
    /// Queue discs that support it (dualpi2) leave the time a packet waited behind a stopped
    /// device queue (a full Wi-Fi MAC queue) out of the delay used for L4S marking.
    bool excludeBlockedTime{false};

    // l4s-llm (L4sLlmQueueDisc): the agent, its timing, and the teachers that can stand in
    std::string agentChannel;                //!< the agent's shared-memory channel ("": none)
    Time decisionInterval{MilliSeconds(16)}; //!< decision epoch
    Time decisionDelay{Seconds(0)};          //!< simulated time before a decision takes effect
    uint32_t batchSize{16}; //!< head-of-queue packets the agent decides one by one per epoch
    Time agentTimeout{Seconds(5)};           //!< wall-clock time the agent has per request
    std::string llmOverload{"controller"};   //!< controller | decision (OverloadRule)
    Time llmLSojournLimit{Seconds(0)};       //!< L packets that waited longer are dropped (0: off)
    std::string llmLAgentDrop{"drop"};       //!< drop | mark (AgentLDrop)
    std::string llmAgentForward{"forward"};  //!< forward | draw (AgentForward)
    std::string llmAgentDrop{"drop"};        //!< drop | draw (AgentDrop)
    std::string llmClassic{"agent"};         //!< agent | controller (ClassicDecider)
    std::string llmMode{"agent"};            //!< agent | teacher | record
    std::string teacher{"dualpi2"};          //!< acting teacher (teacher mode; record mode)
    std::string recordActor{"auto"};         //!< record mode: auto | agent | teacher
    std::string recordPath;                  //!< record mode: the record file
    double explorationEpsilon{0};            //!< l4s-llm: epsilon-random teacher actions
    /// dualpi2, l4s-llm: the ns-3 stream of the queue disc's own random draws (-1: ns-3's
    /// automatic assignment; l4s-llm takes this stream and the next). Another stream gives the
    /// same traffic sources other draws; other queue discs refuse it.
    int64_t drawStream{-1};
};

/**
 * \ingroup aqm-llm
 * \brief One queue disc name of aqm-llm's common set, its ns-3 TypeId and attributes.
 */
struct AqmQueueDiscSpec
{
    std::string name;        //!< short name used on every command line (e.g. "fq-codel-l4s")
    std::string typeId;      //!< ns-3 TypeId name (e.g. "ns3::FqCoDelQueueDisc")
    std::string description; //!< one line for help texts
    /// Whether its own random draws can be moved to another stream (AqmQueueDiscOptions::drawStream)
    bool drawStream{false};
};

/**
 * \ingroup aqm-llm
 * \brief The queue discs compared by aqm-llm, by one set of names.
 *
 * Names: fifo red codel fq-codel fq-codel-l4s pie pie-l4s fq-pie cobalt fq-cobalt, plus
 * those of this module (dualpi2, l4s-llm) once built. Use it from any ns-3 program:
 *
 * \code
 *   AqmQueueDiscRegistry::Install(bottleneckDevice, "fq-codel-l4s", options);
 * \endcode
 */
class AqmQueueDiscRegistry
{
  public:
    /// \brief All known specs, in a stable order.
    static const std::vector<AqmQueueDiscSpec>& Specs();
    /// \brief All known names, in a stable order.
    static std::vector<std::string> Names();
    /// \brief Whether \p name is one of Names().
    static bool IsKnown(const std::string& name);
    /// \brief Whether \p name's own random draws can be moved to another stream
    /// (AqmQueueDiscOptions::drawStream; AqmQueueDiscSpec::drawStream).
    static bool HasDrawStream(const std::string& name);
    /// \brief The names for which HasDrawStream holds, in a stable order.
    static std::vector<std::string> DrawStreamNames();
    /// \brief The spec for \p name; aborts with the allowed names if it is unknown.
    static const AqmQueueDiscSpec& Get(const std::string& name);

    /**
     * \brief Install queue disc \p name as the root queue disc of \p device.
     * \return the installed queue disc
     */
    static Ptr<QueueDisc> Install(Ptr<NetDevice> device,
                                  const std::string& name,
                                  const AqmQueueDiscOptions& options);

    /**
     * \brief Install an MqQueueDisc root on a multi-queue \p device (Wi-Fi) with queue disc
     * \p name as the child of every transmit queue.
     * \return the child queue disc of transmit queue \p childIndex (AC_BE is 0 on Wi-Fi)
     */
    static Ptr<QueueDisc> InstallMq(Ptr<NetDevice> device,
                                    const std::string& name,
                                    const AqmQueueDiscOptions& options,
                                    uint32_t childIndex = 0);

    /// \brief Set the attributes that \p name takes from \p options on \p qdisc.
    static void Configure(Ptr<QueueDisc> qdisc,
                          const std::string& name,
                          const AqmQueueDiscOptions& options);
};

} // namespace ns3

#endif /* AQM_QUEUE_DISC_REGISTRY_H */
