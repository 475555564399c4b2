/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * Dumbbell: N L4S senders (DCTCP, ECT(1)) and M classic senders (Cubic, ECN optional),
 * each on its own leaf, share one bottleneck link between two routers. The queue disc
 * under test sits on the left router's bottleneck device; the device queue below it is
 * kept a few packets deep so that the standing queue forms in the queue disc.
 *
 *   sender_i --(access)-- R1 ==(bottleneck, qdisc)== R2 --(access)-- receiver_i
 *
 * The topology is common/dumbbell-topology's, with a constant bottleneck (fiveg and
 * satellite build the same one with a bottleneck that changes at run time).
 */
#include "common/dumbbell-topology.h"
#include "common/scenario.h"

#include "ns3/core-module.h"
#include "ns3/network-module.h"

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

    DumbbellLinks links;
    links.accessRate = access;
    links.senderDelay = accessDelay;
    links.receiverDelay = accessDelay;
    links.forwardRate = rate;
    links.uplinkRate = rate;
    links.bottleneckDelay = bottleneckDelay;
    links.deviceQueue = params.GetInt("device_queue");
    const DumbbellTopology net(mix, links, params.GetString("qdisc"),
                               QueueDiscOptionsFrom(params, rate, bottleneckDelay));

    FlowTable flows;
    MetricsCollector metrics(flows, WindowStart(params), StopTime(params));
    TrafficInstaller traffic(flows, WindowStart(params), StopTime(params));
    traffic.SetSocketHook([&metrics](FlowRecord& f, Ptr<Socket> s) { metrics.AttachSocket(f, s); });
    net.InstallTraffic(traffic);

    net.AttachBottleneck(metrics);
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
