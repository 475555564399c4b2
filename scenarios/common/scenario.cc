/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "scenario.h"

#include "ns3/aqm-teachers.h"
#include "ns3/core-module.h"
#include "ns3/flow-monitor-helper.h"
#include "ns3/ipv4-queue-disc-item.h"
#include "ns3/l4s-llm-queue-disc.h"
#include "ns3/network-module.h"
#include "ns3/traffic-control-layer.h"

#include <chrono>
#include <fstream>
#include <iostream>

using namespace ns3;

namespace aqmllm
{

void
DeclareCommonParams(ParamSet& p)
{
    p.Int("seed", 1, "run number of the RNG (same seed + config: same metrics)", 1, 1e9)
        .Time("duration", "20s", "simulated time", 0.1, 86400)
        .Time("warmup", "5s", "start of the steady-state window (figures exclude the warm-up)", 0, 86400)
        .Choice("qdisc", "fq-codel-l4s", AqmQueueDiscRegistry::Names(), "queue disc at the bottleneck")
        .Size("buffer", "1000p", "queue disc limit (packets or bytes)")
        .Bool("aqm_ecn", true, "AQMs mark ECN-capable packets instead of dropping them")
        .Time("l4s_threshold", "1ms", "CE-marking step for ECT(1) in fq-codel-l4s and pie-l4s", 1e-6, 1)
        .Bool("exclude_blocked_time", false, "dualpi2: leave time spent behind a stopped device queue out of the L4S marking delay (Wi-Fi)")
        .Int("segment_size", 1448, "TCP segment size in bytes (ns-3's default 536 spoils results)", 500, 8960)
        .Int("tcp_buffer", 0, "TCP send/receive buffer in bytes (0: 4x the bandwidth-delay product, at least 1 MiB)", 0, 1e9)
        .String("output", "", "metrics JSON path (empty: stdout)")
        .String("timeseries", "", "time-series CSV path (empty: none)")
        .Time("timeseries_interval", "100ms", "time-series sampling interval", 0.001, 60)
        .Bool("progress", false, "print '@progress <t> <total>' lines on stderr")
        .String("agent_channel", "", "l4s-llm: the agent's shared-memory channel (set by the runner; empty: no agent, DualPI2 fallback)")
        .Time("decision_interval", "16ms", "l4s-llm: decision epoch (one request to the agent per epoch)", 1e-4, 10)
        .Time("decision_delay", "0s", "l4s-llm: simulated time before a decision takes effect", 0, 10)
        .Int("llm_batch", 16, "l4s-llm: head-of-queue packets the agent decides one by one each epoch (0: every packet by the epoch probabilities)", 0, 32)
        .Time("agent_timeout", "5s", "l4s-llm: wall-clock time the agent has per request before the epoch falls back to DualPI2 (default: far above the measured p99 decision latency of the SmolLM2 agent on 2 CPU cores, 15 ms)", 0.001, 3600)
        .Choice("llm_overload", "controller", {"controller", "decision"}, "l4s-llm: what DualPI2's overload rule on the L queue follows while the agent or a teacher decides (controller: the fallback's p', as DualPI2; decision: the probabilities in force)")
        .Time("llm_l_sojourn_limit", "0s", "l4s-llm: an L4S packet that waited longer is dropped whoever decides (the L queue's own overload rule; 0s: off)", 0, 10)
        .Choice("llm_l_agent_drop", "drop", {"drop", "mark"}, "l4s-llm: what the agent's per-packet drop of an L4S packet does (mark: a CE mark instead, as DualPI2 signals to L4S senders; teachers unaffected)")
        .Choice("llm_agent_drop", "drop", {"drop", "draw"}, "l4s-llm: what the agent's per-packet drop of a head-of-queue packet does (draw: the packet takes the epoch decision's draw, as packets past the batch do, so the per-packet head drops no more than the epoch probabilities; llm_l_agent_drop=mark still marks an L4S packet instead; teachers unaffected)")
        .Choice("llm_agent_forward", "forward", {"forward", "draw"}, "l4s-llm: what the agent's per-packet forward of a head-of-queue packet does (draw: the packet takes the epoch decision's draw, as packets past the batch do, so per-packet drops and marks add to the epoch probabilities; teachers unaffected)")
        .Choice("llm_classic", "agent", {"agent", "controller"}, "l4s-llm: who decides the classic queue's packets under the agent's decisions (controller: DualPI2's PI2 controller, RFC 9332 with its p', so the agent decides the L4S queue only; teachers and the fallback unaffected)")
        .Choice("llm_mode", "agent", {"agent", "teacher", "record"}, "l4s-llm: who decides (record: one acts, every teacher in shadow, all logged to record_path)")
        .Choice("teacher", "dualpi2", AqmTeacher::DefaultSet(), "l4s-llm: the teacher that acts in teacher mode (and in record mode when record_actor is teacher)")
        .Choice("record_actor", "auto", {"auto", "agent", "teacher"}, "l4s-llm record mode: who acts (auto: the agent if agent_channel is set, else the teacher)")
        .String("record_path", "", "l4s-llm record mode: the record file (one record per epoch)")
        .String("flowmon", "", "write ns-3 FlowMonitor statistics of every flow (XML) to this path (empty: none)")
        .String("pcap", "", "write the packets leaving the queue disc under test (raw IPv4 PCAP) to PREFIX-<node>-<device>.pcap (empty: none)")
        .Int("qdisc_stream", -1, "ns-3 stream index of the queue disc's own random draws (-1: ns-3's automatic assignment; another index: the same traffic sources, other draws; l4s-llm takes this index and the next)", -1, 1e9)
        .Double("explore_epsilon", 0, "l4s-llm: probability that an acting teacher's per-packet action is replaced by a uniformly random one (experience collection)", 0, 1);
    p.AppliesTo("qdisc_stream", AqmQueueDiscRegistry::DrawStreamNames());
    TrafficMix::Declare(p);
}

Time
WindowStart(const ParamSet& p)
{
    return p.GetTime("warmup");
}

Time
StopTime(const ParamSet& p)
{
    return p.GetTime("duration");
}

void
SetupRun(const ParamSet& p)
{
    if (p.GetTime("warmup") >= p.GetTime("duration"))
    {
        p.Fail("bad value '" + p.GetString("warmup") + "' for warmup: must be below duration (" +
               p.GetString("duration") + ")");
    }
    if (p.GetInt("l4s_flows") + p.GetInt("classic_flows") == 0 &&
        p.GetDouble("short_flows_per_s") == 0 && p.GetRate("udp_rate").GetBitRate() == 0)
    {
        p.Fail("no traffic: set l4s_flows, classic_flows, short_flows_per_s or udp_rate");
    }
    const std::string qdisc = p.GetString("qdisc");
    if (qdisc == "l4s-llm" && p.GetString("llm_mode") == "record" &&
        p.GetString("record_path").empty())
    {
        p.Fail("llm_mode=record needs record_path");
    }
    p.CheckQdiscScope(qdisc);
    RngSeedManager::SetSeed(1);
    RngSeedManager::SetRun(p.GetInt("seed"));
}

AqmQueueDiscOptions
QueueDiscOptionsFrom(const ParamSet& p, DataRate linkRate, Time linkDelay)
{
    AqmQueueDiscOptions o;
    o.limit = p.GetSize("buffer");
    o.useEcn = p.GetBool("aqm_ecn");
    o.l4sThreshold = p.GetTime("l4s_threshold");
    o.linkRate = linkRate;
    o.linkDelay = linkDelay;
    o.excludeBlockedTime = p.GetBool("exclude_blocked_time");
    o.agentChannel = p.GetString("agent_channel");
    o.decisionInterval = p.GetTime("decision_interval");
    o.decisionDelay = p.GetTime("decision_delay");
    o.batchSize = static_cast<uint32_t>(p.GetInt("llm_batch"));
    o.agentTimeout = p.GetTime("agent_timeout");
    o.llmMode = p.GetString("llm_mode");
    o.llmOverload = p.GetString("llm_overload");
    o.llmLSojournLimit = p.GetTime("llm_l_sojourn_limit");
    o.llmLAgentDrop = p.GetString("llm_l_agent_drop");
    o.llmAgentForward = p.GetString("llm_agent_forward");
    o.llmAgentDrop = p.GetString("llm_agent_drop");
    o.llmClassic = p.GetString("llm_classic");
    o.teacher = p.GetString("teacher");
    o.recordActor = p.GetString("record_actor");
    o.recordPath = p.GetString("record_path");
    o.explorationEpsilon = p.GetDouble("explore_epsilon");
    o.drawStream = p.GetInt("qdisc_stream");
    return o;
}

namespace
{
void
Progress(Time step, Time stop)
{
    std::cerr << "@progress " << Simulator::Now().GetSeconds() << " " << stop.GetSeconds()
              << std::endl;
    if (Simulator::Now() + step <= stop)
    {
        Simulator::Schedule(step, &Progress, step, stop);
    }
}

/// A queue disc of the run, with where it sits.
struct PlacedQueueDisc
{
    Ptr<QueueDisc> qdisc;
    uint32_t node;
    uint32_t device;
};

void
CollectQueueDiscs(Ptr<QueueDisc> qdisc, uint32_t node, uint32_t device, std::vector<PlacedQueueDisc>& out)
{
    if (!qdisc)
    {
        return;
    }
    out.push_back({qdisc, node, device});
    for (std::size_t i = 0; i < qdisc->GetNQueueDiscClasses(); ++i)
    {
        CollectQueueDiscs(qdisc->GetQueueDiscClass(i)->GetQueueDisc(), node, device, out);
    }
}

/// Every queue disc of the run: the root on each device and their children (e.g. under mq).
std::vector<PlacedQueueDisc>
AllQueueDiscs()
{
    std::vector<PlacedQueueDisc> out;
    for (auto it = NodeList::Begin(); it != NodeList::End(); ++it)
    {
        Ptr<Node> node = *it;
        Ptr<TrafficControlLayer> tc = node->GetObject<TrafficControlLayer>();
        for (uint32_t d = 0; tc && d < node->GetNDevices(); ++d)
        {
            CollectQueueDiscs(tc->GetRootQueueDiscOnDevice(node->GetDevice(d)), node->GetId(), d, out);
        }
    }
    return out;
}

/// The agent-facing facts of every L4sLlmQueueDisc of the run (fallbacks, reproducible,
/// agent_epochs, and the details of the one that talked to the agent as "llm").
void
ReportLlm(MetricsCollector& metrics)
{
    std::vector<Ptr<L4sLlmQueueDisc>> qdiscs;
    for (const auto& placed : AllQueueDiscs())
    {
        if (auto llm = DynamicCast<L4sLlmQueueDisc>(placed.qdisc))
        {
            qdiscs.push_back(llm);
        }
    }
    if (qdiscs.empty())
    {
        return;
    }
    uint64_t fallbacks = 0;
    uint64_t agentEpochs = 0;
    bool reproducible = true;
    Ptr<L4sLlmQueueDisc> main = qdiscs.front();
    for (const auto& q : qdiscs)
    {
        fallbacks += q->GetFallbackCount();
        agentEpochs += q->GetAgentEpochCount();
        reproducible = reproducible && q->IsReproducible();
        if (q->GetAgentEpochCount() + q->GetFallbackCount() >
            main->GetAgentEpochCount() + main->GetFallbackCount())
        {
            main = q;
        }
    }
    metrics.AddExtra("fallbacks", std::to_string(fallbacks));
    metrics.AddExtra("reproducible", reproducible ? "true" : "false");
    metrics.AddExtra("agent_epochs", std::to_string(agentEpochs));
    metrics.AddExtra("llm", main->GetReportJson());
}
/// Write \p item's packet with its IPv4 header to \p file (raw IPv4, DLT_RAW).
void
WriteDeparture(Ptr<PcapFileWrapper> file, Ptr<const QueueDiscItem> item)
{
    Ptr<Packet> p = item->GetPacket()->Copy();
    if (auto ip = DynamicCast<const Ipv4QueueDiscItem>(item))
    {
        p->AddHeader(ip->GetHeader());
    }
    file->Write(Simulator::Now(), p);
}

/// PCAP of the packets the queue disc under test (every queue disc of the qdisc parameter's
/// type) sends on, after its drops and marks; each file lives as long as its trace callback.
void
TraceQueueDiscDepartures(const std::string& prefix, const ParamSet& params)
{
    const std::string typeId = AqmQueueDiscRegistry::Get(params.GetString("qdisc")).typeId;
    PcapHelper helper;
    uint32_t n = 0;
    for (const auto& placed : AllQueueDiscs())
    {
        if (placed.qdisc->GetInstanceTypeId().GetName() != typeId)
        {
            continue;
        }
        const std::string path = prefix + "-" + std::to_string(placed.node) + "-" +
                                 std::to_string(placed.device) + (n ? "-" + std::to_string(n) : "") +
                                 ".pcap";
        ++n;
        std::ofstream probe(path);
        if (!probe.good())
        {
            params.Fail("cannot write PCAP file '" + path + "'");
        }
        probe.close();
        Ptr<PcapFileWrapper> file = helper.CreateFile(path, std::ios::out, PcapHelper::DLT_RAW);
        placed.qdisc->TraceConnectWithoutContext("Dequeue", MakeBoundCallback(&WriteDeparture, file));
    }
}
} // namespace

void
RunAndWrite(const std::string& scenario, const ParamSet& params, MetricsCollector& metrics)
{
    const Time stop = StopTime(params);
    if (params.GetBool("progress"))
    {
        const Time step = std::max(MilliSeconds(100), stop / 50);
        Simulator::Schedule(step, &Progress, step, stop);
    }
    // The user's --ns3::... defaults win over the scenario's own (TCP sockets are created
    // during the run, from the defaults in force now).
    params.ApplyNs3Defaults();
    if (!params.GetString("pcap").empty())
    {
        TraceQueueDiscDepartures(params.GetString("pcap"), params);
    }
    FlowMonitorHelper flowmonHelper;
    Ptr<FlowMonitor> flowmon;
    if (!params.GetString("flowmon").empty())
    {
        flowmon = flowmonHelper.InstallAll();
    }
    const auto t0 = std::chrono::steady_clock::now();
    Simulator::Stop(stop);
    Simulator::Run();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (flowmon)
    {
        flowmon->CheckForLostPackets();
        flowmon->SerializeToXmlFile(params.GetString("flowmon"), true, true);
    }
    ReportLlm(metrics);
    const std::string json = metrics.Json(scenario, params, wall);
    Simulator::Destroy();
    const std::string out = params.GetString("output");
    if (out.empty())
    {
        std::cout << json;
    }
    else
    {
        std::ofstream f(out);
        f << json;
        if (!f.good())
        {
            params.Fail("cannot write metrics to '" + out + "'");
        }
    }
}

} // namespace aqmllm
