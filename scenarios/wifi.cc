/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * Wi-Fi: a server sends downlink flows through an 802.11ax access point to stations at
 * varied distances (IdealWifiManager adapts each station's rate to its SNR). The AP's
 * Wi-Fi device is the bottleneck: its root queue disc is an MqQueueDisc with one child
 * per access category, and the child of AC_BE (all traffic here is best effort) is the
 * queue disc under test.
 *
 *   server --(wired, rtt/2)-- AP ~~~ 802.11ax ~~~ station_i
 *
 * MAC queue choice: ns-3's WifiMacQueue holds 500 packets by default, so the backlog
 * would sit below the queue disc, invisible to the AQM. A short MAC queue (mac_queue,
 * default 64 packets per AC) pushes the standing queue into the queue disc, but caps
 * A-MPDU aggregation: the AP can only aggregate what is already in the MAC queue. The
 * metrics report the mean MPDUs per transmitted PSDU (wifi_mean_mpdus_per_psdu) so the
 * cost is visible; raise mac_queue for throughput, lower it for AQM control.
 */
#include "common/scenario.h"

#include "ns3/applications-module.h"
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/mobility-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/traffic-control-module.h"
#include "ns3/wifi-module.h"

#include <cmath>
#include <sstream>

using namespace ns3;
using namespace aqmllm;

int
main(int argc, char* argv[])
{
    ParamSet params("wifi");
    DeclareCommonParams(params);
    params.Time("rtt", "20ms", "base round-trip time of the wired part (server to AP and back)", 0.0002, 5)
        .Rate("wired_rate", "1Gbps", "server to AP link rate", 1e6, 100e9)
        .Double("distance_min", 5, "distance of the nearest station in metres", 0.5, 200)
        .Double("distance_max", 20, "distance of the farthest station in metres", 0.5, 200)
        .Choice("channel_width", "20", {"20", "40", "80", "160"}, "channel width in MHz, 5 GHz band (20 keeps runs fast; 80 is about 4x slower to simulate)")
        .Int("mac_queue", 64, "WifiMacQueue size per access category, packets (ns-3 default 500)", 1, 10000)
        .Time("mac_max_delay", "500ms", "WifiMacQueue MaxDelay (packets older are dropped by the MAC)", 0.001, 10)
        .Choice("rate_manager", "ideal", {"ideal", "thompson", "minstrel-ht"}, "rate adaptation");
    // At the AP a packet waits behind the full MAC queue; dualpi2 discounts that by default.
    params.SetDefault("exclude_blocked_time", "true");
    params.Parse(argc, argv);
    SetupRun(params);
    if (params.GetDouble("distance_min") > params.GetDouble("distance_max"))
    {
        params.Fail("bad value '" + params.GetString("distance_min") +
                    "' for distance_min: must not exceed distance_max (" +
                    params.GetString("distance_max") + ")");
    }

    const TrafficMix mix = TrafficMix::From(params);
    const Time rtt = params.GetTime("rtt");
    const DataRate wiredRate = params.GetRate("wired_rate");
    // Wi-Fi peaks near 1 Gb/s at 80 MHz; size TCP buffers for that times the base RTT.
    uint32_t tcpBuffer = params.GetInt("tcp_buffer");
    if (tcpBuffer == 0)
    {
        tcpBuffer = std::max<uint32_t>(1 << 20, static_cast<uint32_t>(4 * 1e9 / 8 * rtt.GetSeconds()));
    }
    ConfigureTcp(params.GetInt("segment_size"), tcpBuffer);
    Config::SetDefault("ns3::WifiMacQueue::MaxSize",
                       QueueSizeValue(QueueSize(std::to_string(params.GetInt("mac_queue")) + "p")));
    Config::SetDefault("ns3::WifiMacQueue::MaxDelay", TimeValue(params.GetTime("mac_max_delay")));

    // One station per long-lived flow, L4S and classic interleaved over the distances;
    // short flows and UDP go to one more station.
    const uint32_t nBulk = mix.l4sFlows + mix.classicFlows;
    const bool haveExtra = mix.shortFlowsPerS > 0 || mix.udpRateBps > 0;
    const uint32_t nStations = nBulk + (haveExtra ? 1 : 0);

    NodeContainer server;
    server.Create(1);
    NodeContainer ap;
    ap.Create(1);
    NodeContainer stations;
    stations.Create(nStations);

    WifiHelper wifi;
    wifi.SetStandard(WIFI_STANDARD_80211ax);
    const std::string rm = params.GetString("rate_manager");
    wifi.SetRemoteStationManager(rm == "ideal"      ? "ns3::IdealWifiManager"
                                 : rm == "thompson" ? "ns3::ThompsonSamplingWifiManager"
                                                    : "ns3::MinstrelHtWifiManager");
    YansWifiChannelHelper channel = YansWifiChannelHelper::Default();
    YansWifiPhyHelper phy;
    phy.SetChannel(channel.Create());
    phy.Set("ChannelSettings",
            StringValue("{0, " + params.GetString("channel_width") + ", BAND_5GHZ, 0}"));
    WifiMacHelper mac;
    Ssid ssid("aqm-llm");
    mac.SetType("ns3::StaWifiMac", "Ssid", SsidValue(ssid));
    NetDeviceContainer staDevs = wifi.Install(phy, mac, stations);
    mac.SetType("ns3::ApWifiMac", "Ssid", SsidValue(ssid));
    NetDeviceContainer apDevs = wifi.Install(phy, mac, ap);

    MobilityHelper mobility;
    Ptr<ListPositionAllocator> pos = CreateObject<ListPositionAllocator>();
    pos->Add(Vector(0, 0, 0)); // AP
    const double dmin = params.GetDouble("distance_min");
    const double dmax = params.GetDouble("distance_max");
    std::vector<double> distance(nStations);
    std::ostringstream stationJson;
    stationJson << "[";
    for (uint32_t i = 0; i < nStations; ++i)
    {
        distance[i] = nStations == 1 ? dmin : dmin + (dmax - dmin) * i / (nStations - 1);
        const double angle = 2 * M_PI * i / std::max<uint32_t>(nStations, 1);
        pos->Add(Vector(distance[i] * std::cos(angle), distance[i] * std::sin(angle), 0));
        stationJson << (i ? ", " : "") << "{\"name\": \"sta" << i << "\", \"distance_m\": "
                    << JsonNumber(distance[i]) << "}";
    }
    stationJson << "]";
    mobility.SetPositionAllocator(pos);
    mobility.SetMobilityModel("ns3::ConstantPositionMobilityModel");
    mobility.Install(ap);
    mobility.Install(stations);

    PointToPointHelper wired;
    wired.SetDeviceAttribute("DataRate", DataRateValue(wiredRate));
    wired.SetChannelAttribute("Delay", TimeValue(rtt / 2));
    wired.SetQueue("ns3::DropTailQueue", "MaxSize", StringValue("100p"));
    NetDeviceContainer wiredDevs = wired.Install(server.Get(0), ap.Get(0));

    InternetStackHelper stack;
    stack.Install(server);
    stack.Install(ap);
    stack.Install(stations);

    // Install before Ipv4AddressHelper::Assign, which would otherwise add its own default.
    Ptr<QueueDisc> qdisc = AqmQueueDiscRegistry::InstallMq(
        apDevs.Get(0), params.GetString("qdisc"),
        QueueDiscOptionsFrom(params, DataRate("600Mbps"), rtt / 2), 0 /* AC_BE */);

    Ipv4AddressHelper addr;
    addr.SetBase("10.1.0.0", "255.255.255.0");
    Ipv4InterfaceContainer wiredIf = addr.Assign(wiredDevs);
    addr.SetBase("10.2.0.0", "255.255.255.0");
    addr.Assign(apDevs);
    Ipv4InterfaceContainer staIf = addr.Assign(staDevs);
    Ipv4GlobalRoutingHelper::PopulateRoutingTables();

    FlowTable flows;
    MetricsCollector metrics(flows, WindowStart(params), StopTime(params));
    TrafficInstaller traffic(flows, WindowStart(params), StopTime(params));
    traffic.SetSocketHook([&metrics](FlowRecord& f, Ptr<Socket> s) { metrics.AttachSocket(f, s); });

    // Interleave classes over the stations: L4S flow j -> station 2j (or next free), classic
    // flows fill the rest, so neither class gets all the near stations.
    std::vector<uint32_t> stationOfFlow(nBulk);
    {
        std::vector<uint32_t> order;
        uint32_t l = 0, c = 0;
        while (l < mix.l4sFlows || c < mix.classicFlows)
        {
            if (l < mix.l4sFlows)
            {
                stationOfFlow[l++] = order.size();
                order.push_back(0);
            }
            if (c < mix.classicFlows)
            {
                stationOfFlow[mix.l4sFlows + c++] = order.size();
                order.push_back(1);
            }
        }
    }
    const Endpoint serverEp{server.Get(0), wiredIf.GetAddress(0), "server"};
    traffic.InstallBulk(
        mix, [&](const FlowRecord&) { return serverEp; },
        [&](const FlowRecord& f) {
            const uint32_t s = stationOfFlow[f.id];
            return Endpoint{stations.Get(s), staIf.GetAddress(s), "sta" + std::to_string(s)};
        });
    if (haveExtra)
    {
        const uint32_t s = nBulk;
        const Endpoint extra{stations.Get(s), staIf.GetAddress(s), "sta" + std::to_string(s)};
        traffic.InstallShort(mix, serverEp, extra);
        traffic.InstallUdp(mix, serverEp, extra);
    }

    Ptr<WifiNetDevice> apDev = DynamicCast<WifiNetDevice>(apDevs.Get(0));
    metrics.AttachQueueDisc(qdisc);
    metrics.AttachWifiPhy(apDev->GetPhy());
    metrics.AttachDeviceQueue(apDev->GetMac()->GetTxopQueue(AC_BE));
    metrics.SetBaseRtt(rtt);
    metrics.AddExtra("stations", stationJson.str());
    if (!params.GetString("timeseries").empty())
    {
        metrics.EnableTimeSeries(params.GetString("timeseries"), params.GetTime("timeseries_interval"));
    }
    RunAndWrite("wifi", params, metrics);
    return 0;
}
