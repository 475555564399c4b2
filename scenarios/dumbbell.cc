/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * Dumbbell: N L4S senders (DCTCP, ECT(1)) and M classic senders (Cubic, ECN optional),
 * each on its own leaf, share one bottleneck link between two routers. The queue disc
 * under test sits on the left router's bottleneck device; the device queue below it is
 * kept a few packets deep so that the standing queue forms in the queue disc.
 *
 *   sender_i --(access)-- R1 ==(bottleneck, qdisc)== R2 --(access)-- receiver_i
 */
#include "common/scenario.h"

#include "ns3/applications-module.h"
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/traffic-control-module.h"

#include <algorithm>

using namespace ns3;
using namespace aqmllm;

int
main(int argc, char* argv[])
{
    ParamSet params("dumbbell");
    DeclareCommonParams(params);
    params.Rate("bottleneck_rate", "100Mbps", "bottleneck link rate", 1e5, 100e9)
        .Time("rtt", "20ms", "base round-trip time (no queueing)", 0.0004, 5)
        .Rate("access_rate", "0bps", "access link rate (0bps: 10x the bottleneck, at least 1Gbps)", 0, 400e9)
        .Int("device_queue", 2, "packets in the bottleneck device queue below the queue disc", 1, 10000);
    params.Parse(argc, argv);
    SetupRun(params);

    const TrafficMix mix = TrafficMix::From(params);
    const DataRate rate = params.GetRate("bottleneck_rate");
    const Time rtt = params.GetTime("rtt");
    DataRate access = params.GetRate("access_rate");
    if (access.GetBitRate() == 0)
    {
        access = DataRate(std::max<uint64_t>(10 * rate.GetBitRate(), 1000000000ULL));
    }
    // One-way delay rtt/2: a small share on each access link, the rest on the bottleneck.
    const Time accessDelay = std::min(MicroSeconds(500), rtt / 8);
    const Time bottleneckDelay = rtt / 2 - 2 * accessDelay;
    const double bdpBytes = rate.GetBitRate() / 8.0 * rtt.GetSeconds();
    uint32_t tcpBuffer = params.GetInt("tcp_buffer");
    if (tcpBuffer == 0)
    {
        tcpBuffer = std::max<uint32_t>(1 << 20, static_cast<uint32_t>(4 * bdpBytes));
    }
    ConfigureTcp(params.GetInt("segment_size"), tcpBuffer);

    // Each long-lived flow gets a leaf pair; short flows and UDP share one more pair each.
    const uint32_t nBulk = mix.l4sFlows + mix.classicFlows;
    const bool haveShort = mix.shortFlowsPerS > 0;
    const bool haveUdp = mix.udpRateBps > 0;
    const uint32_t nLeaves = nBulk + (haveShort ? 1 : 0) + (haveUdp ? 1 : 0);

    NodeContainer routers;
    routers.Create(2);
    NodeContainer senders;
    senders.Create(nLeaves);
    NodeContainer receivers;
    receivers.Create(nLeaves);
    InternetStackHelper stack;
    stack.InstallAll();

    PointToPointHelper accessLink;
    accessLink.SetDeviceAttribute("DataRate", DataRateValue(access));
    accessLink.SetChannelAttribute("Delay", TimeValue(accessDelay));
    accessLink.SetQueue("ns3::DropTailQueue", "MaxSize", StringValue("100p"));
    PointToPointHelper bottleneck;
    bottleneck.SetDeviceAttribute("DataRate", DataRateValue(rate));
    bottleneck.SetChannelAttribute("Delay", TimeValue(bottleneckDelay));
    bottleneck.SetQueue("ns3::DropTailQueue", "MaxSize",
                        StringValue(std::to_string(params.GetInt("device_queue")) + "p"));

    NetDeviceContainer core = bottleneck.Install(routers.Get(0), routers.Get(1));
    Ipv4AddressHelper addr;
    addr.SetBase("10.0.0.0", "255.255.255.252");
    // The queue disc under test replaces the default one on R1's bottleneck device.
    Ptr<QueueDisc> qdisc = AqmQueueDiscRegistry::Install(
        core.Get(0), params.GetString("qdisc"), QueueDiscOptionsFrom(params, rate, bottleneckDelay));
    addr.Assign(core);

    std::vector<Ipv4Address> receiverAddress(nLeaves);
    std::vector<Ipv4Address> senderAddress(nLeaves);
    for (uint32_t i = 0; i < nLeaves; ++i)
    {
        NetDeviceContainer left = accessLink.Install(senders.Get(i), routers.Get(0));
        NetDeviceContainer right = accessLink.Install(routers.Get(1), receivers.Get(i));
        addr.NewNetwork();
        senderAddress[i] = addr.Assign(left).GetAddress(0);
        addr.NewNetwork();
        receiverAddress[i] = addr.Assign(right).GetAddress(1);
    }
    Ipv4GlobalRoutingHelper::PopulateRoutingTables();

    FlowTable flows;
    MetricsCollector metrics(flows, WindowStart(params), StopTime(params));
    TrafficInstaller traffic(flows, WindowStart(params), StopTime(params));
    traffic.SetSocketHook([&metrics](FlowRecord& f, Ptr<Socket> s) { metrics.AttachSocket(f, s); });

    auto leafOf = [](const FlowRecord& f) { return f.id; };
    traffic.InstallBulk(
        mix,
        [&](const FlowRecord& f) {
            return Endpoint{senders.Get(leafOf(f)), senderAddress[leafOf(f)], "sender" + std::to_string(leafOf(f))};
        },
        [&](const FlowRecord& f) {
            return Endpoint{receivers.Get(leafOf(f)), receiverAddress[leafOf(f)], "receiver" + std::to_string(leafOf(f))};
        });
    uint32_t next = nBulk;
    if (haveShort)
    {
        traffic.InstallShort(mix, Endpoint{senders.Get(next), senderAddress[next], "short-sender"},
                             Endpoint{receivers.Get(next), receiverAddress[next], "short-receiver"});
        ++next;
    }
    if (haveUdp)
    {
        traffic.InstallUdp(mix, Endpoint{senders.Get(next), senderAddress[next], "udp-sender"},
                           Endpoint{receivers.Get(next), receiverAddress[next], "udp-receiver"});
    }

    metrics.AttachQueueDisc(qdisc);
    metrics.AttachLinkTx(core.Get(0));
    metrics.AttachDeviceQueue(DynamicCast<PointToPointNetDevice>(core.Get(0))->GetQueue());
    metrics.SetCapacity([rate](double t0, double t1) { return rate.GetBitRate() * (t1 - t0); },
                        rate.GetBitRate());
    metrics.SetBaseRtt(rtt);
    if (!params.GetString("timeseries").empty())
    {
        metrics.EnableTimeSeries(params.GetString("timeseries"), params.GetTime("timeseries_interval"));
    }
    RunAndWrite("dumbbell", params, metrics);
    return 0;
}
