/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_SCENARIO_DUMBBELL_TOPOLOGY_H
#define AQM_LLM_SCENARIO_DUMBBELL_TOPOLOGY_H

#include "metrics.h"
#include "traffic.h"

#include "ns3/aqm-queue-disc-registry.h"
#include "ns3/data-rate.h"
#include "ns3/ipv4-address.h"
#include "ns3/node-container.h"
#include "ns3/nstime.h"
#include "ns3/point-to-point-channel.h"
#include "ns3/point-to-point-net-device.h"
#include "ns3/queue-disc.h"

#include <string>
#include <vector>

namespace aqmllm
{

/// \brief Rates and delays of a DumbbellTopology's links (the bottleneck's at the start).
struct DumbbellLinks
{
    ns3::DataRate accessRate;     //!< every leaf link, both directions
    ns3::Time senderDelay;        //!< one-way delay of each sender leaf
    ns3::Time receiverDelay;      //!< one-way delay of each receiver leaf
    ns3::DataRate forwardRate;    //!< bottleneck R1 -> R2
    ns3::DataRate uplinkRate;     //!< bottleneck R2 -> R1 (the ACK direction)
    ns3::Time bottleneckDelay;    //!< one-way delay of the bottleneck, both directions
    uint32_t deviceQueue{2};      //!< packets in R1's bottleneck device queue
};

/**
 * \brief The leaf topology of the dumbbell scenarios: every long-lived flow of the mix has
 * its own sender and receiver leaf, short flows and UDP one more pair each, and all share
 * one bottleneck link R1 -> R2. The queue disc under test replaces the default one on
 * R1's bottleneck device; the device queue below it (DumbbellLinks::deviceQueue) is kept a
 * few packets deep so that the standing queue forms in the queue disc.
 *
 *   sender_i --(senderDelay)-- R1 ==(bottleneck, qdisc)== R2 --(receiverDelay)-- receiver_i
 *
 * The constructor creates the nodes, links, queue disc and addresses in a fixed order
 * (ns-3 results depend on it) and populates the routing tables.
 */
class DumbbellTopology
{
  public:
    /**
     * \brief Build the leaves of \p mix around the bottleneck, with the registry's queue
     * disc \p qdisc (configured by \p options) on R1's bottleneck device.
     * \param mix the traffic mix (how many leaf pairs)
     * \param links rates, delays and the device queue
     * \param qdisc the queue disc's registry name
     * \param options its configuration
     */
    DumbbellTopology(const TrafficMix& mix,
                     const DumbbellLinks& links,
                     const std::string& qdisc,
                     const ns3::AqmQueueDiscOptions& options);

    /// \brief Install the mix: long-lived flow i on leaf pair i, then short flows, then UDP.
    void InstallTraffic(TrafficInstaller& traffic) const;

    /// \brief Watch the queue disc, the bottleneck's transmissions and its device queue.
    void AttachBottleneck(MetricsCollector& metrics) const;

    /// \return R1's bottleneck device (R1 -> R2)
    ns3::Ptr<ns3::PointToPointNetDevice> GetForwardDevice() const { return m_forward; }

    /// \return the bottleneck channel (its Delay applies to both directions)
    ns3::Ptr<ns3::PointToPointChannel> GetChannel() const;

  private:
    /// \return the endpoint \p name on sender leaf \p leaf
    Endpoint Sender(uint32_t leaf, const std::string& name) const;
    /// \return the endpoint \p name on receiver leaf \p leaf
    Endpoint Receiver(uint32_t leaf, const std::string& name) const;

    TrafficMix m_mix;                                   //!< the traffic the leaves carry
    ns3::NodeContainer m_senders;                       //!< sender leaves
    ns3::NodeContainer m_receivers;                     //!< receiver leaves
    std::vector<ns3::Ipv4Address> m_senderAddress;      //!< each sender's address
    std::vector<ns3::Ipv4Address> m_receiverAddress;    //!< each receiver's address
    ns3::Ptr<ns3::PointToPointNetDevice> m_forward;     //!< R1's bottleneck device
    ns3::Ptr<ns3::QueueDisc> m_qdisc;                   //!< the queue disc under test
};

} // namespace aqmllm

#endif /* AQM_LLM_SCENARIO_DUMBBELL_TOPOLOGY_H */
