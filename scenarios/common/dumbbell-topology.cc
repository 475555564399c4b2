/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "dumbbell-topology.h"

#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/traffic-control-module.h"

using namespace ns3;

namespace aqmllm
{

DumbbellTopology::DumbbellTopology(const TrafficMix& mix,
                                   const DumbbellLinks& links,
                                   const std::string& qdisc,
                                   const AqmQueueDiscOptions& options)
    : m_mix(mix)
{
    // A leaf pair per long-lived flow, one more for the short flows, one more for UDP.
    const uint32_t nLeaves = mix.l4sFlows + mix.classicFlows + (mix.shortFlowsPerS > 0 ? 1 : 0) +
                             (mix.udpRateBps > 0 ? 1 : 0);

    NodeContainer routers;
    routers.Create(2);
    m_senders.Create(nLeaves);
    m_receivers.Create(nLeaves);
    InternetStackHelper stack;
    stack.InstallAll();

    PointToPointHelper senderLink;
    senderLink.SetDeviceAttribute("DataRate", DataRateValue(links.accessRate));
    senderLink.SetChannelAttribute("Delay", TimeValue(links.senderDelay));
    senderLink.SetQueue("ns3::DropTailQueue", "MaxSize", StringValue("100p"));
    PointToPointHelper receiverLink = senderLink;
    receiverLink.SetChannelAttribute("Delay", TimeValue(links.receiverDelay));

    PointToPointHelper bottleneck;
    bottleneck.SetDeviceAttribute("DataRate", DataRateValue(links.forwardRate));
    bottleneck.SetChannelAttribute("Delay", TimeValue(links.bottleneckDelay));
    bottleneck.SetQueue("ns3::DropTailQueue", "MaxSize",
                        StringValue(std::to_string(links.deviceQueue) + "p"));
    NetDeviceContainer core = bottleneck.Install(routers.Get(0), routers.Get(1));
    m_forward = DynamicCast<PointToPointNetDevice>(core.Get(0));
    DynamicCast<PointToPointNetDevice>(core.Get(1))->SetDataRate(links.uplinkRate);

    Ipv4AddressHelper addr;
    addr.SetBase("10.0.0.0", "255.255.255.252");
    // Before the addresses: assigning them gives a device without a root queue disc
    // ns-3's default one.
    m_qdisc = AqmQueueDiscRegistry::Install(m_forward, qdisc, options);
    addr.Assign(core);

    m_senderAddress.resize(nLeaves);
    m_receiverAddress.resize(nLeaves);
    for (uint32_t i = 0; i < nLeaves; ++i)
    {
        NetDeviceContainer left = senderLink.Install(m_senders.Get(i), routers.Get(0));
        NetDeviceContainer right = receiverLink.Install(routers.Get(1), m_receivers.Get(i));
        addr.NewNetwork();
        m_senderAddress[i] = addr.Assign(left).GetAddress(0);
        addr.NewNetwork();
        m_receiverAddress[i] = addr.Assign(right).GetAddress(1);
    }
    Ipv4GlobalRoutingHelper::PopulateRoutingTables();
}

Endpoint
DumbbellTopology::Sender(uint32_t leaf, const std::string& name) const
{
    return Endpoint{m_senders.Get(leaf), m_senderAddress[leaf], name};
}

Endpoint
DumbbellTopology::Receiver(uint32_t leaf, const std::string& name) const
{
    return Endpoint{m_receivers.Get(leaf), m_receiverAddress[leaf], name};
}

void
DumbbellTopology::InstallTraffic(TrafficInstaller& traffic) const
{
    traffic.InstallBulk(
        m_mix,
        [this](const FlowRecord& f) { return Sender(f.id, "sender" + std::to_string(f.id)); },
        [this](const FlowRecord& f) { return Receiver(f.id, "receiver" + std::to_string(f.id)); });
    uint32_t next = m_mix.l4sFlows + m_mix.classicFlows;
    if (m_mix.shortFlowsPerS > 0)
    {
        traffic.InstallShort(m_mix, Sender(next, "short-sender"), Receiver(next, "short-receiver"));
        ++next;
    }
    if (m_mix.udpRateBps > 0)
    {
        traffic.InstallUdp(m_mix, Sender(next, "udp-sender"), Receiver(next, "udp-receiver"));
    }
}

void
DumbbellTopology::AttachBottleneck(MetricsCollector& metrics) const
{
    metrics.AttachQueueDisc(m_qdisc);
    metrics.AttachLinkTx(m_forward);
    metrics.AttachDeviceQueue(m_forward->GetQueue());
}

Ptr<PointToPointChannel>
DumbbellTopology::GetChannel() const
{
    return DynamicCast<PointToPointChannel>(m_forward->GetChannel());
}

} // namespace aqmllm
