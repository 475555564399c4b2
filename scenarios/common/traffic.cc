/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "traffic.h"

#include "ns3/applications-module.h"
#include "ns3/core-module.h"
#include "ns3/tcp-dctcp.h"

#include <algorithm>

using namespace ns3;

namespace aqmllm
{

NS_LOG_COMPONENT_DEFINE("AqmLlmTraffic");
NS_OBJECT_ENSURE_REGISTERED(TcpFlowSender);

const char*
FlowClassName(FlowClass c)
{
    return c == FlowClass::L4s ? "l4s" : "classic";
}

FlowRecord&
FlowTable::Add(FlowRecord rec)
{
    rec.id = m_flows.size();
    m_portClass[{rec.dst.Get(), rec.dstPort}] = rec.cls;
    m_flows.push_back(std::move(rec));
    return m_flows.back();
}

FlowRecord*
FlowTable::ByDestination(Ipv4Address dst, uint16_t port)
{
    for (auto& f : m_flows)
    {
        if (f.dst == dst && f.dstPort == port)
        {
            return &f;
        }
    }
    return nullptr;
}

bool
FlowTable::ClassOf(Ipv4Address dst, uint16_t port, FlowClass& cls) const
{
    auto it = m_portClass.find({dst.Get(), port});
    if (it == m_portClass.end())
    {
        return false;
    }
    cls = it->second;
    return true;
}

TypeId
TcpFlowSender::GetTypeId()
{
    static TypeId tid = TypeId("aqmllm::TcpFlowSender")
                            .SetParent<Application>()
                            .SetGroupName("AqmLlm")
                            .AddConstructor<TcpFlowSender>()
                            .AddAttribute("SendSize",
                                          "Bytes handed to the socket per Send call",
                                          UintegerValue(1448 * 8),
                                          MakeUintegerAccessor(&TcpFlowSender::m_sendSize),
                                          MakeUintegerChecker<uint32_t>(1));
    return tid;
}

void
TcpFlowSender::Setup(Address remote, TypeId congestionControl, bool ecn, uint64_t maxBytes)
{
    m_remote = remote;
    m_cc = congestionControl;
    m_ecn = ecn;
    m_maxBytes = maxBytes;
}

void
TcpFlowSender::StartApplication()
{
    Ptr<TcpL4Protocol> tcp = GetNode()->GetObject<TcpL4Protocol>();
    NS_ABORT_MSG_UNLESS(tcp, "TcpFlowSender needs the internet stack");
    m_socket = tcp->CreateSocket(m_cc);
    m_socket->SetAttribute("UseEcn",
                           EnumValue<TcpSocketState::UseEcn_t>(m_ecn ? TcpSocketState::On
                                                                     : TcpSocketState::Off));
    m_socket->Bind();
    if (m_onSocket)
    {
        m_onSocket(m_socket);
    }
    m_socket->Connect(m_remote);
    m_socket->SetSendCallback(MakeCallback(&TcpFlowSender::SendData, this));
    m_socket->SetConnectCallback(
        Callback<void, Ptr<Socket>>([this](Ptr<Socket> s) { SendData(s, s->GetTxAvailable()); }),
        MakeNullCallback<void, Ptr<Socket>>());
}

void
TcpFlowSender::StopApplication()
{
    if (m_socket && !m_closed)
    {
        m_socket->Close();
        m_closed = true;
    }
}

void
TcpFlowSender::SendData(Ptr<Socket> socket, uint32_t)
{
    while (!m_closed && (m_maxBytes == 0 || m_sent < m_maxBytes))
    {
        uint64_t chunk = m_sendSize;
        if (m_maxBytes > 0)
        {
            chunk = std::min<uint64_t>(chunk, m_maxBytes - m_sent);
        }
        chunk = std::min<uint64_t>(chunk, socket->GetTxAvailable());
        if (chunk == 0)
        {
            return;
        }
        int sent = socket->Send(Create<Packet>(static_cast<uint32_t>(chunk)));
        if (sent <= 0)
        {
            return;
        }
        m_sent += sent;
    }
    if (m_maxBytes > 0 && m_sent >= m_maxBytes && !m_closed)
    {
        socket->Close();
        m_closed = true;
    }
}

TypeId
CongestionControlTypeId(const std::string& name)
{
    static const std::map<std::string, std::string> names = {
        {"dctcp", "ns3::TcpDctcp"},   {"cubic", "ns3::TcpCubic"}, {"newreno", "ns3::TcpNewReno"},
        {"bbr", "ns3::TcpBbr"},       {"prague", "ns3::TcpPrague"},
    };
    auto it = names.find(name);
    NS_ABORT_MSG_IF(it == names.end(), "unknown congestion control '" << name << "'");
    return TypeId::LookupByName(it->second);
}

void
ConfigureTcp(uint32_t segmentSize, uint32_t bufferBytes)
{
    // ns-3 defaults that spoil AQM results: 536-byte segments, 128 KiB buffers.
    Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(segmentSize));
    Config::SetDefault("ns3::TcpSocket::SndBufSize", UintegerValue(bufferBytes));
    Config::SetDefault("ns3::TcpSocket::RcvBufSize", UintegerValue(bufferBytes));
    Config::SetDefault("ns3::TcpSocket::InitialCwnd", UintegerValue(10));
    // Without timestamps ns-3 samples RTT at full resolution (with them, in whole ms).
    Config::SetDefault("ns3::TcpSocketBase::Timestamp", BooleanValue(false));
    // Receivers accept ECN; each sender sets its own choice.
    Config::SetDefault("ns3::TcpSocketBase::UseEcn", StringValue("AcceptOnly"));
    // DCTCP sends ECT(1), the L4S codepoint (ns-3's default is ECT(0)).
    Config::SetDefault("ns3::TcpDctcp::UseEct0", BooleanValue(false));
}

void
SetNodeCongestionControl(Ptr<Node> node, TypeId congestionControl)
{
    node->GetObject<TcpL4Protocol>()->SetAttribute("SocketType", TypeIdValue(congestionControl));
}

void
TrafficMix::Declare(ParamSet& p)
{
    p.Int("l4s_flows", 1, "long-lived L4S flows (DCTCP sending ECT(1))", 0, 64)
        .Int("classic_flows", 1, "long-lived classic flows", 0, 64)
        .Choice("l4s_cc", "dctcp", {"dctcp"}, "congestion control of L4S flows (DCTCP stands in for Prague)")
        .Choice("classic_cc", "cubic", {"cubic", "newreno", "bbr"}, "congestion control of classic flows")
        .Bool("classic_ecn", false, "classic flows negotiate ECN (ECT(0)) instead of relying on drops")
        .Time("start_spread", "1s", "long-lived flows start at uniform random times in [0, start_spread]", 0, 60)
        .Double("short_flows_per_s", 0, "Poisson arrival rate of short web-like flows (0: none)", 0, 1000)
        .Double("short_flow_mean_size", 100e3, "mean size of short flows in bytes (bounded Pareto, shape 1.5)", 1500, 100e6)
        .Rate("udp_rate", "0bps", "unresponsive UDP rate (0bps: none)", 0, 100e9)
        .Bool("udp_onoff", false, "UDP alternates exponential on/off periods (1 s mean) instead of constant bit rate")
        .Choice("udp_ecn", "not-ect", {"not-ect", "ect1"}, "codepoint of the UDP flow (ect1: L4S class)")
        .Time("udp_start", "0s", "start time of the UDP flow", 0, 3600);
}

TrafficMix
TrafficMix::From(const ParamSet& p)
{
    TrafficMix m;
    m.l4sFlows = p.GetInt("l4s_flows");
    m.classicFlows = p.GetInt("classic_flows");
    m.l4sCc = p.GetString("l4s_cc");
    m.classicCc = p.GetString("classic_cc");
    m.classicEcn = p.GetBool("classic_ecn");
    m.startSpreadS = p.GetTime("start_spread").GetSeconds();
    m.shortFlowsPerS = p.GetDouble("short_flows_per_s");
    m.shortFlowMeanBytes = p.GetDouble("short_flow_mean_size");
    m.udpRateBps = p.GetRate("udp_rate").GetBitRate();
    m.udpOnOff = p.GetBool("udp_onoff");
    m.udpEct1 = p.GetString("udp_ecn") == "ect1";
    m.udpStartS = p.GetTime("udp_start").GetSeconds();
    return m;
}

TrafficInstaller::TrafficInstaller(FlowTable& flows, Time windowStart, Time stop)
    : m_flows(flows),
      m_windowStart(windowStart),
      m_stop(stop)
{
    m_startJitter = CreateObject<UniformRandomVariable>();
    m_shortGap = CreateObject<ExponentialRandomVariable>();
    m_shortSize = CreateObject<ParetoRandomVariable>();
}

void
TrafficInstaller::OnSinkRx(uint32_t flowId, Ptr<const Packet> p, const Address&)
{
    FlowRecord* f = m_flows.ById(flowId);
    f->rxBytes += p->GetSize();
    f->rxBytesBin += p->GetSize();
    if (Simulator::Now() >= m_windowStart)
    {
        f->rxBytesWindow += p->GetSize();
    }
}

void
TrafficInstaller::InstallBulk(const TrafficMix& mix, const EndpointFor& senderFor,
                              const EndpointFor& receiverFor)
{
    const uint32_t total = mix.l4sFlows + mix.classicFlows;
    for (uint32_t i = 0; i < total; ++i)
    {
        const bool l4s = i < mix.l4sFlows;
        FlowRecord rec;
        rec.kind = "bulk";
        rec.cc = l4s ? mix.l4sCc : mix.classicCc;
        rec.cls = l4s ? FlowClass::L4s : FlowClass::Classic;
        rec.ecn = l4s || mix.classicEcn;
        rec.id = m_flows.All().size(); // provisional, for the endpoint callbacks
        Endpoint rx = receiverFor(rec);
        Endpoint tx = senderFor(rec);
        rec.dst = rx.address;
        rec.dstPort = m_nextPort++;
        rec.src = tx.address;
        rec.station = rx.name;
        rec.startS = m_startJitter->GetValue(0.0, std::max(mix.startSpreadS, 1e-9));
        FlowRecord& f = m_flows.Add(rec);
        const uint32_t id = f.id;

        TypeId cc = CongestionControlTypeId(rec.cc);
        SetNodeCongestionControl(rx.node, cc);
        PacketSinkHelper sinkHelper("ns3::TcpSocketFactory",
                                    InetSocketAddress(Ipv4Address::GetAny(), rec.dstPort));
        ApplicationContainer sink = sinkHelper.Install(rx.node);
        sink.Start(Seconds(0));
        sink.Stop(m_stop);
        sink.Get(0)->TraceConnectWithoutContext(
            "Rx", MakeCallback(&TrafficInstaller::OnSinkRx, this, id));
        if (l4s)
        {
            // ACK every segment at L4S receivers: ns-3's DCTCP with delayed ACKs under-counts
            // CE marks (measured L4S/classic goodput ratio under dualpi2: 2.27 with delayed
            // ACKs, 1.42 without), while TCP Prague, for which DCTCP stands in, gets every
            // mark fed back through AccECN. Accepted sockets inherit it from the listener.
            Ptr<PacketSink> ps = DynamicCast<PacketSink>(sink.Get(0));
            Simulator::Schedule(NanoSeconds(1), [ps]() {
                ps->GetListeningSocket()->SetAttribute("DelAckCount", UintegerValue(1));
            });
        }

        Ptr<TcpFlowSender> app = CreateObject<TcpFlowSender>();
        app->Setup(InetSocketAddress(rec.dst, rec.dstPort), cc, rec.ecn, 0);
        app->SetSocketCallback([this, id](Ptr<Socket> s) {
            Address local;
            s->GetSockName(local);
            m_flows.ById(id)->srcPort = InetSocketAddress::ConvertFrom(local).GetPort();
            if (m_socketHook)
            {
                m_socketHook(*m_flows.ById(id), s);
            }
        });
        tx.node->AddApplication(app);
        app->SetStartTime(Seconds(rec.startS));
        app->SetStopTime(m_stop);
    }
}

void
TrafficInstaller::InstallShort(const TrafficMix& mix, const Endpoint& sender, const Endpoint& receiver)
{
    if (mix.shortFlowsPerS <= 0)
    {
        return;
    }
    // Bounded Pareto, shape 1.5: scale chosen so that the unbounded mean is the requested mean.
    const double shape = 1.5;
    m_shortSize->SetAttribute("Shape", DoubleValue(shape));
    m_shortSize->SetAttribute("Scale", DoubleValue(mix.shortFlowMeanBytes * (shape - 1) / shape));
    m_shortSize->SetAttribute("Bound", DoubleValue(mix.shortFlowMeanBytes * 50));
    m_shortGap->SetAttribute("Mean", DoubleValue(1.0 / mix.shortFlowsPerS));
    m_shortPort = m_nextPort++;

    TypeId cc = CongestionControlTypeId(mix.classicCc);
    PacketSinkHelper sinkHelper("ns3::TcpSocketFactory",
                                InetSocketAddress(Ipv4Address::GetAny(), m_shortPort));
    ApplicationContainer sink = sinkHelper.Install(receiver.node);
    sink.Start(Seconds(0));
    sink.Stop(m_stop);
    sink.Get(0)->TraceConnectWithoutContext(
        "RxWithAddresses", MakeCallback(&TrafficInstaller::OnShortSinkRx, this));
    (void)cc;
    Simulator::Schedule(Seconds(m_shortGap->GetValue()), &TrafficInstaller::StartShortFlow, this,
                        mix, sender, receiver);
}

void
TrafficInstaller::StartShortFlow(const TrafficMix& mix, Endpoint sender, Endpoint receiver)
{
    if (Simulator::Now() >= m_stop)
    {
        return;
    }
    FlowRecord rec;
    rec.kind = "short";
    rec.cc = mix.classicCc;
    rec.cls = FlowClass::Classic;
    rec.ecn = mix.classicEcn;
    rec.dst = receiver.address;
    rec.dstPort = m_shortPort;
    rec.src = sender.address;
    rec.station = receiver.name;
    rec.startS = Simulator::Now().GetSeconds();
    rec.sizeBytes = std::max<uint64_t>(1, static_cast<uint64_t>(m_shortSize->GetValue()));
    FlowRecord& f = m_flows.Add(rec);
    const uint32_t id = f.id;

    Ptr<TcpFlowSender> app = CreateObject<TcpFlowSender>();
    app->Setup(InetSocketAddress(rec.dst, rec.dstPort), CongestionControlTypeId(rec.cc), rec.ecn,
               rec.sizeBytes);
    app->SetSocketCallback([this, id](Ptr<Socket> s) {
        Address local;
        s->GetSockName(local);
        FlowRecord* fr = m_flows.ById(id);
        fr->srcPort = InetSocketAddress::ConvertFrom(local).GetPort();
        m_shortBySource[{fr->src.Get(), fr->srcPort}] = id;
        if (m_socketHook)
        {
            m_socketHook(*fr, s);
        }
    });
    sender.node->AddApplication(app);
    app->SetStartTime(Seconds(0));
    app->SetStopTime(m_stop);

    Simulator::Schedule(Seconds(m_shortGap->GetValue()), &TrafficInstaller::StartShortFlow, this,
                        mix, sender, receiver);
}

void
TrafficInstaller::OnShortSinkRx(Ptr<const Packet> p, const Address& from, const Address&)
{
    InetSocketAddress src = InetSocketAddress::ConvertFrom(from);
    auto it = m_shortBySource.find({src.GetIpv4().Get(), src.GetPort()});
    if (it == m_shortBySource.end())
    {
        return;
    }
    FlowRecord* f = m_flows.ById(it->second);
    f->rxBytes += p->GetSize();
    f->rxBytesBin += p->GetSize();
    if (Simulator::Now() >= m_windowStart)
    {
        f->rxBytesWindow += p->GetSize();
    }
    if (f->completionS < 0 && f->rxBytes >= f->sizeBytes)
    {
        f->completionS = Simulator::Now().GetSeconds();
    }
}

void
TrafficInstaller::InstallUdp(const TrafficMix& mix, const Endpoint& sender, const Endpoint& receiver)
{
    if (mix.udpRateBps <= 0)
    {
        return;
    }
    FlowRecord rec;
    rec.kind = "udp";
    rec.cc = "udp";
    rec.cls = mix.udpEct1 ? FlowClass::L4s : FlowClass::Classic;
    rec.ecn = mix.udpEct1;
    rec.dst = receiver.address;
    rec.dstPort = m_nextPort++;
    rec.src = sender.address;
    rec.station = receiver.name;
    rec.startS = mix.udpStartS;
    FlowRecord& f = m_flows.Add(rec);
    const uint32_t id = f.id;

    PacketSinkHelper sinkHelper("ns3::UdpSocketFactory",
                                InetSocketAddress(Ipv4Address::GetAny(), rec.dstPort));
    ApplicationContainer sink = sinkHelper.Install(receiver.node);
    sink.Start(Seconds(0));
    sink.Stop(m_stop);
    sink.Get(0)->TraceConnectWithoutContext("Rx",
                                            MakeCallback(&TrafficInstaller::OnSinkRx, this, id));

    OnOffHelper onoff("ns3::UdpSocketFactory", InetSocketAddress(rec.dst, rec.dstPort));
    onoff.SetConstantRate(DataRate(static_cast<uint64_t>(mix.udpRateBps)), 1400);
    if (mix.udpOnOff)
    {
        onoff.SetAttribute("OnTime", StringValue("ns3::ExponentialRandomVariable[Mean=1.0]"));
        onoff.SetAttribute("OffTime", StringValue("ns3::ExponentialRandomVariable[Mean=1.0]"));
    }
    onoff.SetAttribute("Tos", UintegerValue(mix.udpEct1 ? 0x01 : 0x00));
    ApplicationContainer app = onoff.Install(sender.node);
    app.Start(Seconds(rec.startS));
    app.Stop(m_stop);
}

} // namespace aqmllm
