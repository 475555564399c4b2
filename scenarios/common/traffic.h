/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_SCENARIO_TRAFFIC_H
#define AQM_LLM_SCENARIO_TRAFFIC_H

#include "params.h"

#include "ns3/application.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/random-variable-stream.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace aqmllm
{

/// Traffic class of a flow: L4S (scalable CC, ECT(1)) or classic.
enum class FlowClass
{
    L4s,
    Classic
};

/// \brief "l4s" or "classic".
const char* FlowClassName(FlowClass c);

/// \brief One flow of a run: what it is, and what was measured on it.
struct FlowRecord
{
    uint32_t id{0};
    std::string kind;   //!< "bulk" (long-lived), "short" (finite, FCT measured) or "udp"
    std::string cc;     //!< "dctcp", "cubic", ... or "udp"
    FlowClass cls{FlowClass::Classic};
    bool ecn{false};    //!< ECN-capable transport
    ns3::Ipv4Address dst;
    uint16_t dstPort{0};
    ns3::Ipv4Address src;
    uint16_t srcPort{0};
    double startS{0};
    uint64_t sizeBytes{0}; //!< short flows: bytes to transfer
    std::string station;   //!< receiver name (Wi-Fi station, leaf)

    // measured
    uint64_t rxBytes{0};       //!< all bytes received
    uint64_t rxBytesWindow{0}; //!< bytes received inside the steady-state window
    double completionS{-1};    //!< short flows: time the last byte arrived
    std::vector<double> rttMs; //!< RTT samples (LastRTT) inside the window
    uint64_t rxBytesBin{0};    //!< bytes since the last time-series sample
};

/**
 * \brief All flows of a run, and lookup of a packet's flow by destination address and port
 * (short flows share one port per receiver and are told apart by their source port).
 */
class FlowTable
{
  public:
    FlowRecord& Add(FlowRecord rec);
    std::vector<FlowRecord>& All() { return m_flows; }
    const std::vector<FlowRecord>& All() const { return m_flows; }
    /// \brief Flow of a packet to \p dst:\p port (nullptr if unknown).
    FlowRecord* ByDestination(ns3::Ipv4Address dst, uint16_t port);
    /// \brief Class of the traffic to \p dst:\p port (all flows on one port share a class).
    bool ClassOf(ns3::Ipv4Address dst, uint16_t port, FlowClass& cls) const;
    FlowRecord* ById(uint32_t id) { return id < m_flows.size() ? &m_flows[id] : nullptr; }

  private:
    std::vector<FlowRecord> m_flows;
    std::map<std::pair<uint32_t, uint16_t>, FlowClass> m_portClass;
};

/**
 * \brief A TCP sender with its own congestion control (BulkSendApplication cannot be
 * handed a socket): sends \c maxBytes (0: until stopped), then closes.
 */
class TcpFlowSender : public ns3::Application
{
  public:
    static ns3::TypeId GetTypeId();
    TcpFlowSender() = default;
    ~TcpFlowSender() override = default;

    /// \brief Where to send, which congestion control, ECN on or off, how much.
    void Setup(ns3::Address remote, ns3::TypeId congestionControl, bool ecn, uint64_t maxBytes);
    /// \brief Called with the socket right after it is bound (to hook traces, learn its port).
    void SetSocketCallback(std::function<void(ns3::Ptr<ns3::Socket>)> cb) { m_onSocket = cb; }

  private:
    void StartApplication() override;
    void StopApplication() override;
    void SendData(ns3::Ptr<ns3::Socket> socket, uint32_t available);

    ns3::Address m_remote;
    ns3::TypeId m_cc;
    bool m_ecn{false};
    uint64_t m_maxBytes{0};
    uint64_t m_sent{0};
    uint32_t m_sendSize{1448 * 8};
    bool m_closed{false};
    ns3::Ptr<ns3::Socket> m_socket;
    std::function<void(ns3::Ptr<ns3::Socket>)> m_onSocket;
};

/// \brief TypeId of a congestion control by short name ("dctcp", "cubic", "newreno", "bbr").
ns3::TypeId CongestionControlTypeId(const std::string& name);

/// \brief Global TCP settings that keep ns-3's defaults from spoiling AQM results.
void ConfigureTcp(uint32_t segmentSize, uint32_t bufferBytes);

/// \brief Make every TCP socket created on \p node use \p congestionControl
/// (a DCTCP receiver must itself be DCTCP to echo ECN per packet).
void SetNodeCongestionControl(ns3::Ptr<ns3::Node> node, ns3::TypeId congestionControl);

/// \brief The traffic mix, shared by every scenario.
struct TrafficMix
{
    uint32_t l4sFlows{1};
    uint32_t classicFlows{1};
    std::string l4sCc{"dctcp"};
    std::string classicCc{"cubic"};
    bool classicEcn{false};
    double startSpreadS{1.0};     //!< long-lived flows start uniformly in [0, spread]
    double shortFlowsPerS{0};     //!< Poisson arrival rate of short flows (0: none)
    double shortFlowMeanBytes{100e3};
    double udpRateBps{0};         //!< unresponsive UDP (0: none)
    bool udpOnOff{false};         //!< on/off (exponential 1 s mean periods) instead of constant
    bool udpEct1{false};          //!< UDP sends ECT(1) (L4S class) instead of Not-ECT
    double udpStartS{0};

    /// \brief Declare the traffic parameters on \p params.
    static void Declare(ParamSet& params);
    /// \brief Read them back.
    static TrafficMix From(const ParamSet& params);
};

/// \brief A receiver endpoint for one flow.
struct Endpoint
{
    ns3::Ptr<ns3::Node> node;
    ns3::Ipv4Address address;
    std::string name;
};

/**
 * \brief Installs the traffic mix between senders and receivers and fills the FlowTable.
 *
 * The scenario says which sender and receiver each flow uses through callbacks, so the
 * same code serves the dumbbell (one leaf pair per flow), the Wi-Fi AP (one server, one
 * station per flow) and the capacity-trace scenarios.
 */
class TrafficInstaller
{
  public:
    using EndpointFor = std::function<Endpoint(const FlowRecord&)>;

    TrafficInstaller(FlowTable& flows, ns3::Time windowStart, ns3::Time stop);

    /// \brief Long-lived flows: L4S first, then classic.
    void InstallBulk(const TrafficMix& mix, const EndpointFor& sender, const EndpointFor& receiver);
    /// \brief Short flows (Poisson arrivals, bounded Pareto sizes) from \p sender to \p receiver.
    void InstallShort(const TrafficMix& mix, const Endpoint& sender, const Endpoint& receiver);
    /// \brief Unresponsive UDP from \p sender to \p receiver.
    void InstallUdp(const TrafficMix& mix, const Endpoint& sender, const Endpoint& receiver);

    /// \brief Called with each sender socket and its flow (metrics hook RTT traces here).
    void SetSocketHook(std::function<void(FlowRecord&, ns3::Ptr<ns3::Socket>)> hook) { m_socketHook = hook; }

  private:
    void StartShortFlow(const TrafficMix& mix, Endpoint sender, Endpoint receiver);
    void OnSinkRx(uint32_t flowId, ns3::Ptr<const ns3::Packet> p, const ns3::Address& from);
    void OnShortSinkRx(ns3::Ptr<const ns3::Packet> p, const ns3::Address& from, const ns3::Address& to);

    FlowTable& m_flows;
    ns3::Time m_windowStart;
    ns3::Time m_stop;
    uint16_t m_nextPort{5000};
    std::function<void(FlowRecord&, ns3::Ptr<ns3::Socket>)> m_socketHook;
    ns3::Ptr<ns3::ExponentialRandomVariable> m_shortGap;
    ns3::Ptr<ns3::ParetoRandomVariable> m_shortSize;
    ns3::Ptr<ns3::UniformRandomVariable> m_startJitter;
    std::map<std::pair<uint32_t, uint16_t>, uint32_t> m_shortBySource; //!< (src addr, src port) -> flow
    bool m_shortSinkInstalled{false};
    uint16_t m_shortPort{0};
};

} // namespace aqmllm

#endif
