/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * \brief Example of a researcher's own ns-3 program using aqm-llm's queue discs:
 * two hosts, one 20 Mb/s bottleneck, one DCTCP (ECT(1)) flow through the queue disc
 * named on the command line. Prints the queue disc's statistics.
 */
#include "ns3/applications-module.h"
#include "ns3/aqm-queue-disc-registry.h"
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/traffic-control-module.h"

#include <iostream>

using namespace ns3;

int
main(int argc, char* argv[])
{
    std::string qdiscName = "dualpi2";
    CommandLine cmd(__FILE__);
    cmd.AddValue("qdisc", "queue disc name (aqm-llm's common set)", qdiscName);
    cmd.Parse(argc, argv);
    if (!AqmQueueDiscRegistry::IsKnown(qdiscName))
    {
        std::cerr << "unknown queue disc '" << qdiscName << "'" << std::endl;
        return 2;
    }

    Config::SetDefault("ns3::TcpL4Protocol::SocketType", TypeIdValue(TcpDctcp::GetTypeId()));
    Config::SetDefault("ns3::TcpDctcp::UseEct0", BooleanValue(false)); // ECT(1): L4S
    Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(1448));

    NodeContainer nodes;
    nodes.Create(2);
    PointToPointHelper link;
    link.SetDeviceAttribute("DataRate", StringValue("20Mbps"));
    link.SetChannelAttribute("Delay", StringValue("5ms"));
    link.SetQueue("ns3::DropTailQueue", "MaxSize", StringValue("2p"));
    NetDeviceContainer devs = link.Install(nodes);
    InternetStackHelper stack;
    stack.Install(nodes);

    AqmQueueDiscOptions options;
    options.linkRate = DataRate("20Mbps");
    Ptr<QueueDisc> qdisc = AqmQueueDiscRegistry::Install(devs.Get(0), qdiscName, options);

    Ipv4AddressHelper addr;
    addr.SetBase("10.9.0.0", "255.255.255.0");
    Ipv4InterfaceContainer ifs = addr.Assign(devs);

    BulkSendHelper bulk("ns3::TcpSocketFactory", InetSocketAddress(ifs.GetAddress(1), 9));
    bulk.Install(nodes.Get(0)).Start(Seconds(0.1));
    PacketSinkHelper sink("ns3::TcpSocketFactory", InetSocketAddress(Ipv4Address::GetAny(), 9));
    ApplicationContainer sinkApp = sink.Install(nodes.Get(1));

    Simulator::Stop(Seconds(3));
    Simulator::Run();
    const auto rx = DynamicCast<PacketSink>(sinkApp.Get(0))->GetTotalRx();
    std::cout << "qdisc " << qdisc->GetInstanceTypeId().GetName() << "\n"
              << "received_bytes " << rx << "\n"
              << qdisc->GetStats() << std::endl;
    Simulator::Destroy();
    return rx > 0 ? 0 : 1;
}
