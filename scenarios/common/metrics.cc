/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "metrics.h"

#include "ns3/core-module.h"
#include "ns3/ipv4-queue-disc-item.h"
#include "ns3/tcp-socket-base.h"
#include "ns3/wifi-phy-state-helper.h"
#include "ns3/wifi-phy.h"
#include "ns3/wifi-psdu.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

using namespace ns3;

namespace aqmllm
{

NS_LOG_COMPONENT_DEFINE("AqmLlmMetrics");

namespace
{
/// Linear-interpolated percentile of sorted samples (numpy's default method).
double
Percentile(const std::vector<double>& sorted, double q)
{
    if (sorted.empty())
    {
        return std::nan("");
    }
    const double pos = q * (sorted.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const auto hi = std::min(lo + 1, sorted.size() - 1);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

std::string
CountsJson(const std::map<std::string, uint64_t>& m)
{
    std::ostringstream os;
    os << "{";
    bool first = true;
    for (const auto& [k, v] : m)
    {
        os << (first ? "" : ", ") << JsonString(k) << ": " << v;
        first = false;
    }
    os << "}";
    return os.str();
}

double
Ratio(double num, double den)
{
    return den > 0 ? num / den : 0.0;
}
} // namespace

Summary
Summary::Of(std::vector<double> samples)
{
    Summary s;
    s.count = samples.size();
    if (samples.empty())
    {
        s.mean = s.p50 = s.p95 = s.p99 = s.max = std::nan("");
        return s;
    }
    std::sort(samples.begin(), samples.end());
    s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / samples.size();
    s.p50 = Percentile(samples, 0.50);
    s.p95 = Percentile(samples, 0.95);
    s.p99 = Percentile(samples, 0.99);
    s.max = samples.back();
    return s;
}

std::string
Summary::Json() const
{
    std::ostringstream os;
    os << "{\"count\": " << count << ", \"mean\": " << JsonNumber(mean) << ", \"p50\": "
       << JsonNumber(p50) << ", \"p95\": " << JsonNumber(p95) << ", \"p99\": " << JsonNumber(p99)
       << ", \"max\": " << JsonNumber(max) << "}";
    return os.str();
}

MetricsCollector::MetricsCollector(FlowTable& flows, Time windowStart, Time stop)
    : m_flows(flows),
      m_windowStart(windowStart),
      m_stop(stop)
{
}

bool
MetricsCollector::InWindow() const
{
    return Simulator::Now() >= m_windowStart;
}

bool
MetricsCollector::Classify(Ptr<const QueueDiscItem> item, FlowClass& cls) const
{
    auto ipItem = DynamicCast<const Ipv4QueueDiscItem>(item);
    if (!ipItem)
    {
        return false;
    }
    const Ipv4Header& ip = ipItem->GetHeader();
    if (ip.GetProtocol() != 6 && ip.GetProtocol() != 17)
    {
        return false;
    }
    uint8_t ports[4];
    if (ipItem->GetPacket()->CopyData(ports, 4) < 4)
    {
        return false;
    }
    const uint16_t dstPort = (ports[2] << 8) | ports[3];
    return m_flows.ClassOf(ip.GetDestination(), dstPort, cls);
}

void
MetricsCollector::AttachQueueDisc(Ptr<QueueDisc> qdisc)
{
    m_qdisc = qdisc;
    qdisc->TraceConnectWithoutContext("Enqueue", MakeCallback(&MetricsCollector::OnEnqueue, this));
    qdisc->TraceConnectWithoutContext("Dequeue", MakeCallback(&MetricsCollector::OnDequeue, this));
    qdisc->TraceConnectWithoutContext("DropBeforeEnqueue",
                                      MakeCallback(&MetricsCollector::OnDrop, this));
    qdisc->TraceConnectWithoutContext("DropAfterDequeue",
                                      MakeCallback(&MetricsCollector::OnDrop, this));
    qdisc->TraceConnectWithoutContext("Mark", MakeCallback(&MetricsCollector::OnMark, this));
}

void
MetricsCollector::OnEnqueue(Ptr<const QueueDiscItem> item)
{
    FlowClass c;
    if (!Classify(item, c))
    {
        ++m_otherPackets;
        return;
    }
    if (InWindow())
    {
        ++Stats(c).enqueued;
    }
}

void
MetricsCollector::OnDequeue(Ptr<const QueueDiscItem> item)
{
    FlowClass c;
    if (!Classify(item, c))
    {
        return;
    }
    const double ms = (Simulator::Now() - item->GetTimeStamp()).GetSeconds() * 1e3;
    ClassStats& s = Stats(c);
    s.binSojournSum += ms;
    ++s.binCount;
    if (InWindow())
    {
        ++s.dequeued;
        s.sojournMs.push_back(ms);
    }
}

void
MetricsCollector::OnDrop(Ptr<const QueueDiscItem> item, const char* reason)
{
    FlowClass c;
    if (!Classify(item, c))
    {
        return;
    }
    ClassStats& s = Stats(c);
    ++s.binDrops;
    if (InWindow())
    {
        ++s.drops;
        ++s.dropReasons[reason];
    }
}

void
MetricsCollector::OnMark(Ptr<const QueueDiscItem> item, const char* reason)
{
    FlowClass c;
    if (!Classify(item, c))
    {
        return;
    }
    ClassStats& s = Stats(c);
    ++s.binMarks;
    if (InWindow())
    {
        ++s.marks;
        ++s.markReasons[reason];
    }
}

void
MetricsCollector::AttachSocket(FlowRecord& flow, Ptr<Socket> socket)
{
    socket->TraceConnectWithoutContext("LastRTT",
                                       MakeCallback(&MetricsCollector::OnRtt, this, flow.id));
}

void
MetricsCollector::OnRtt(uint32_t flowId, Time, Time rtt)
{
    if (rtt.IsStrictlyPositive())
    {
        m_rttBinSumMs += rtt.GetSeconds() * 1e3;
        ++m_rttBinCount;
    }
    if (InWindow() && rtt.IsStrictlyPositive())
    {
        m_flows.ById(flowId)->rttMs.push_back(rtt.GetSeconds() * 1e3);
    }
}

void
MetricsCollector::AttachLinkTx(Ptr<NetDevice> device)
{
    device->TraceConnectWithoutContext("PhyTxEnd", MakeCallback(&MetricsCollector::OnLinkTx, this));
}

void
MetricsCollector::OnLinkTx(Ptr<const Packet> p)
{
    if (InWindow())
    {
        m_linkTxBytesWindow += p->GetSize();
    }
}

void
MetricsCollector::AttachDeviceQueue(Ptr<Object> queue)
{
    // Any ns3::Queue<T> (a point-to-point DropTailQueue, a WifiMacQueue) has this trace.
    queue->TraceConnectWithoutContext(
        "PacketsInQueue",
        Callback<void, uint32_t, uint32_t>([this](uint32_t, uint32_t n) {
            m_deviceQueuePeak = std::max(m_deviceQueuePeak, n);
        }));
}

void
MetricsCollector::AttachWifiPhy(Ptr<WifiPhy> phy)
{
    m_wifi = true;
    phy->GetState()->TraceConnectWithoutContext(
        "State",
        Callback<void, Time, Time, WifiPhyState>([this](Time start, Time duration, WifiPhyState st) {
            if (st != WifiPhyState::TX)
            {
                return;
            }
            // Count the part of the transmission inside the window.
            const double a = std::max(start.GetSeconds(), m_windowStart.GetSeconds());
            const double b = std::min((start + duration).GetSeconds(), m_stop.GetSeconds());
            if (b > a)
            {
                m_airtimeTxS += b - a;
            }
        }));
    phy->TraceConnectWithoutContext(
        "PhyTxPsduBegin",
        Callback<void, WifiConstPsduMap, WifiTxVector, double>(
            [this](WifiConstPsduMap psdus, WifiTxVector, double) {
                if (!InWindow())
                {
                    return;
                }
                for (const auto& [staId, psdu] : psdus)
                {
                    if (psdu->GetNMpdus() > 0 && !psdu->GetHeader(0).IsCtl())
                    {
                        ++m_ampduCount;
                        m_ampduMpdus += psdu->GetNMpdus();
                    }
                }
            }));
}

void
MetricsCollector::SetCapacity(std::function<double(double, double)> bitsBetween, double nominalBps)
{
    m_capacityBits = std::move(bitsBetween);
    m_nominalBps = nominalBps;
}

void
MetricsCollector::EnableTimeSeries(const std::string& path, Time interval)
{
    m_ts = std::make_unique<std::ofstream>(path);
    NS_ABORT_MSG_UNLESS(m_ts->good(), "cannot write time series to " << path);
    m_tsInterval = interval;
    Simulator::Schedule(interval, &MetricsCollector::SampleTimeSeries, this);
}

void
MetricsCollector::AddTimeSeriesColumn(const std::string& name,
                                      std::function<double(double, double)> value)
{
    m_tsColumns.emplace_back(name, std::move(value));
}

void
MetricsCollector::AddRttTimeSeriesColumn(const std::string& name)
{
    AddTimeSeriesColumn(name, [this](double, double) {
        const double v = m_rttBinCount ? m_rttBinSumMs / m_rttBinCount : std::nan("");
        m_rttBinSumMs = 0;
        m_rttBinCount = 0;
        return v;
    });
}

void
MetricsCollector::SampleTimeSeries()
{
    if (m_tsFlows.empty() && m_ts)
    {
        // Long-lived and UDP flows exist from the start; short flows are summed.
        *m_ts << "t_s,l4s_sojourn_ms,classic_sojourn_ms,l4s_marks,classic_marks,l4s_drops,"
                 "classic_drops,qdisc_packets,qdisc_bytes";
        for (const auto& f : m_flows.All())
        {
            if (f.kind != "short")
            {
                m_tsFlows.push_back(f.id);
                *m_ts << ",flow" << f.id << "_mbps";
            }
        }
        *m_ts << ",short_flows_mbps";
        for (const auto& column : m_tsColumns)
        {
            *m_ts << "," << column.first;
        }
        *m_ts << "\n";
    }
    const double dt = m_tsInterval.GetSeconds();
    *m_ts << Simulator::Now().GetSeconds();
    for (auto* s : {&m_classes[0], &m_classes[1]})
    {
        *m_ts << "," << (s->binCount ? JsonNumber(s->binSojournSum / s->binCount) : std::string(""));
    }
    *m_ts << "," << m_classes[0].binMarks << "," << m_classes[1].binMarks << ","
          << m_classes[0].binDrops << "," << m_classes[1].binDrops;
    *m_ts << "," << (m_qdisc ? m_qdisc->GetNPackets() : 0) << ","
          << (m_qdisc ? m_qdisc->GetNBytes() : 0);
    for (auto& s : m_classes)
    {
        s.binSojournSum = 0;
        s.binCount = s.binMarks = s.binDrops = 0;
    }
    for (uint32_t id : m_tsFlows)
    {
        FlowRecord* f = m_flows.ById(id);
        *m_ts << "," << JsonNumber(f->rxBytesBin * 8.0 / dt / 1e6);
        f->rxBytesBin = 0;
    }
    uint64_t shortBytes = 0;
    for (auto& f : m_flows.All())
    {
        if (f.kind == "short")
        {
            shortBytes += f.rxBytesBin;
            f.rxBytesBin = 0;
        }
    }
    *m_ts << "," << JsonNumber(shortBytes * 8.0 / dt / 1e6);
    const double now = Simulator::Now().GetSeconds();
    for (const auto& column : m_tsColumns)
    {
        const double v = column.second(now - dt, now);
        *m_ts << "," << (std::isfinite(v) ? JsonNumber(v) : std::string(""));
    }
    *m_ts << "\n";
    if (Simulator::Now() + m_tsInterval <= m_stop)
    {
        Simulator::Schedule(m_tsInterval, &MetricsCollector::SampleTimeSeries, this);
    }
    else
    {
        m_ts->flush();
    }
}

std::string
MetricsCollector::Json(const std::string& scenario, const ParamSet& params, double wallSeconds) const
{
    const double window = (m_stop - m_windowStart).GetSeconds();
    std::ostringstream os;
    os << "{\n";
    os << "  \"scenario\": " << JsonString(scenario) << ",\n";
    os << "  \"config\": " << params.ValuesJson() << ",\n";
    os << "  \"versions\": {\"aqm_llm\": " << JsonString(AQM_LLM_VERSION)
       << ", \"ns3\": " << JsonString(AQM_LLM_NS3_VERSION) << ", \"compiler\": "
       << JsonString(__VERSION__) << "},\n";
    os << "  \"window_s\": [" << JsonNumber(m_windowStart.GetSeconds()) << ", "
       << JsonNumber(m_stop.GetSeconds()) << "],\n";
    os << "  \"wall_time_s\": " << JsonNumber(wallSeconds) << ",\n";

    // Flows.
    std::vector<double> bulkGoodput;
    std::array<std::vector<double>, 2> classRtt;
    std::array<double, 2> classGoodput{0, 0};
    double totalGoodput = 0;
    std::vector<double> fcts;
    uint64_t shortStarted = 0;
    uint64_t shortDone = 0;
    os << "  \"flows\": [";
    bool first = true;
    for (const auto& f : m_flows.All())
    {
        const double goodput = f.rxBytesWindow * 8.0 / window / 1e6;
        const int ci = f.cls == FlowClass::L4s ? 0 : 1;
        classGoodput[ci] += goodput;
        totalGoodput += goodput;
        classRtt[ci].insert(classRtt[ci].end(), f.rttMs.begin(), f.rttMs.end());
        if (f.kind == "bulk")
        {
            bulkGoodput.push_back(goodput);
        }
        if (f.kind == "short")
        {
            ++shortStarted;
            if (f.completionS >= 0)
            {
                ++shortDone;
                if (f.startS >= m_windowStart.GetSeconds())
                {
                    fcts.push_back(f.completionS - f.startS);
                }
            }
            continue; // short flows are summarised, not listed
        }
        os << (first ? "\n" : ",\n") << "    {\"id\": " << f.id << ", \"kind\": " << JsonString(f.kind)
           << ", \"cc\": " << JsonString(f.cc) << ", \"class\": " << JsonString(FlowClassName(f.cls))
           << ", \"ecn\": " << (f.ecn ? "true" : "false")
           << ", \"receiver\": " << JsonString(f.station) << ", \"start_s\": " << JsonNumber(f.startS)
           << ", \"goodput_mbps\": " << JsonNumber(goodput) << ", \"rx_bytes\": " << f.rxBytes
           << ", \"rtt_ms\": " << Summary::Of(f.rttMs).Json() << "}";
        first = false;
    }
    os << "\n  ],\n";
    const Summary fct = Summary::Of(fcts);
    os << "  \"short_flows\": {\"started\": " << shortStarted << ", \"completed\": " << shortDone
       << ", \"fct_s\": " << fct.Json() << "},\n";

    // Classes.
    os << "  \"classes\": {";
    for (int ci = 0; ci < 2; ++ci)
    {
        const ClassStats& s = m_classes[ci];
        os << (ci ? ",\n    " : "\n    ") << JsonString(ci == 0 ? "l4s" : "classic") << ": {"
           << "\"sojourn_ms\": " << Summary::Of(s.sojournMs).Json()
           << ", \"goodput_mbps\": " << JsonNumber(classGoodput[ci])
           << ", \"enqueued\": " << s.enqueued << ", \"dequeued\": " << s.dequeued
           << ", \"drops\": " << s.drops << ", \"marks\": " << s.marks
           << ", \"loss_rate\": " << JsonNumber(Ratio(s.drops, s.enqueued + s.drops))
           << ", \"mark_rate\": " << JsonNumber(Ratio(s.marks, s.dequeued))
           << ", \"drop_reasons\": " << CountsJson(s.dropReasons)
           << ", \"mark_reasons\": " << CountsJson(s.markReasons)
           << ", \"rtt_ms\": " << Summary::Of(classRtt[ci]).Json() << "}";
    }
    os << "\n  },\n";

    // Totals.
    uint64_t drops = m_classes[0].drops + m_classes[1].drops;
    uint64_t marks = m_classes[0].marks + m_classes[1].marks;
    uint64_t enq = m_classes[0].enqueued + m_classes[1].enqueued;
    uint64_t deq = m_classes[0].dequeued + m_classes[1].dequeued;
    std::vector<double> allRtt = classRtt[0];
    allRtt.insert(allRtt.end(), classRtt[1].begin(), classRtt[1].end());
    std::vector<double> allSojourn = m_classes[0].sojournMs;
    allSojourn.insert(allSojourn.end(), m_classes[1].sojournMs.begin(), m_classes[1].sojournMs.end());
    const Summary rtt = Summary::Of(allRtt);
    const Summary soj = Summary::Of(allSojourn);

    double utilisation = std::nan("");
    double capacityMbps = std::nan("");
    if (m_wifi)
    {
        utilisation = m_airtimeTxS / window;
    }
    else if (m_capacityBits)
    {
        const double bits = m_capacityBits(m_windowStart.GetSeconds(), m_stop.GetSeconds());
        utilisation = Ratio(m_linkTxBytesWindow * 8.0, bits);
        capacityMbps = bits / window / 1e6;
    }
    double jain = std::nan("");
    if (!bulkGoodput.empty())
    {
        double sum = 0, sq = 0;
        for (double x : bulkGoodput)
        {
            sum += x;
            sq += x * x;
        }
        jain = sq > 0 ? sum * sum / (bulkGoodput.size() * sq) : std::nan("");
    }
    os << "  \"total_goodput_mbps\": " << JsonNumber(totalGoodput) << ",\n";
    os << "  \"capacity_mbps\": " << JsonNumber(capacityMbps) << ",\n";
    os << "  \"nominal_capacity_mbps\": " << JsonNumber(m_nominalBps / 1e6) << ",\n";
    os << "  \"utilisation\": " << JsonNumber(utilisation) << ",\n";
    os << "  \"utilisation_basis\": "
       << JsonString(m_wifi ? "AP transmit airtime share" : "bottleneck link bits / capacity")
       << ",\n";
    os << "  \"link_tx_mbps\": " << JsonNumber(m_linkTxBytesWindow * 8.0 / window / 1e6) << ",\n";
    os << "  \"jain_fairness\": " << JsonNumber(jain) << ",\n";
    os << "  \"drops\": " << drops << ",\n  \"marks\": " << marks << ",\n";
    os << "  \"loss_rate\": " << JsonNumber(Ratio(drops, enq + drops)) << ",\n";
    os << "  \"mark_rate\": " << JsonNumber(Ratio(marks, deq)) << ",\n";
    os << "  \"sojourn_ms\": " << soj.Json() << ",\n";
    os << "  \"rtt_ms\": " << rtt.Json() << ",\n";
    os << "  \"base_rtt_ms\": " << JsonNumber(m_baseRtt.GetSeconds() * 1e3) << ",\n";
    os << "  \"rtt_inflation_ms\": " << JsonNumber(rtt.mean - m_baseRtt.GetSeconds() * 1e3) << ",\n";
    os << "  \"device_queue_peak_packets\": " << m_deviceQueuePeak << ",\n";
    os << "  \"unclassified_packets\": " << m_otherPackets << ",\n";
    if (m_wifi)
    {
        os << "  \"wifi_mean_mpdus_per_psdu\": " << JsonNumber(Ratio(m_ampduMpdus, m_ampduCount))
           << ",\n";
    }
    if (m_qdisc)
    {
        os << "  \"qdisc_type\": " << JsonString(m_qdisc->GetInstanceTypeId().GetName()) << ",\n";
    }
    for (const auto& [k, v] : m_extra)
    {
        os << "  " << JsonString(k) << ": " << v << ",\n";
    }
    // Queue discs that consult an agent override these two through AddExtra.
    if (!m_extra.count("fallbacks"))
    {
        os << "  \"fallbacks\": 0,\n";
    }
    if (!m_extra.count("reproducible"))
    {
        os << "  \"reproducible\": true,\n";
    }
    os << "  \"metrics_version\": 1\n}\n";
    return os.str();
}

} // namespace aqmllm
