/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "variable-link.h"

#include "dumbbell-topology.h"

#include "ns3/core-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"

#include <algorithm>
#include <cmath>
#include <sstream>

using namespace ns3;

namespace aqmllm
{

void
DeclareTraceParams(ParamSet& p)
{
    p.String("trace", "",
             "capacity trace CSV (time_s,mbps rows, or a file of the 5G dataset with Timestamp, "
             "NetworkMode, DL_bitrate in kbit/s); empty: the scenario's own seeded model")
        .Rate("trace_floor", "1Mbps",
              "capacity floor: trace seconds below this rate (zero-rate seconds) are raised to it "
              "(fiveg's model samples too)", 1e3, 100e9)
        .Time("trace_offset", "0s", "start this far into the trace", 0, 1e7)
        .String("modes", "all",
                "keep only trace rows of these NetworkModes, comma-separated (5G, LTE, HSPA+, "
                "HSDPA, HSUPA, UMTS, EDGE, GPRS); all: every row");
}

std::optional<StepSchedule>
LoadTraceFromParams(const ParamSet& p, TraceInfo& info)
{
    const std::string path = p.GetString("trace");
    TraceOptions options;
    try
    {
        options.modes = ParseModes(p.GetString("modes"));
    }
    catch (const TraceError& e)
    {
        p.Fail("bad value '" + p.GetString("modes") + "' for modes: " + e.what());
    }
    if (path.empty())
    {
        if (!options.modes.empty())
        {
            p.Fail("bad value '" + p.GetString("modes") + "' for modes: must be used with trace=PATH");
        }
        if (p.GetTime("trace_offset").IsStrictlyPositive())
        {
            p.Fail("bad value '" + p.GetString("trace_offset") +
                   "' for trace_offset: must be used with trace=PATH");
        }
        return std::nullopt;
    }
    options.floorBps = p.GetRate("trace_floor").GetBitRate();
    options.offsetS = p.GetTime("trace_offset").GetSeconds();
    try
    {
        return LoadCapacityTrace(path, options, &info);
    }
    catch (const TraceError& e)
    {
        const std::string what = e.what();
        if (what.rfind("trace_offset", 0) == 0)
        {
            p.Fail("bad value '" + p.GetString("trace_offset") + "' for trace_offset: " + what);
        }
        p.Fail("bad value '" + path + "' for trace: " + what);
    }
}

namespace
{
std::string
SetJson(const std::set<std::string>& s)
{
    std::string out = "[";
    for (const auto& x : s)
    {
        out += (out.size() > 1 ? ", " : "") + JsonString(x);
    }
    return out + "]";
}
} // namespace

std::string
TraceInfoJson(const TraceInfo& i)
{
    std::ostringstream os;
    os << "{\"path\": " << JsonString(i.path) << ", \"format\": " << JsonString(i.format)
       << ", \"rows\": " << i.rows << ", \"rows_used\": " << i.rowsUsed
       << ", \"rows_missing_rate\": " << i.rowsMissing << ", \"rows_other_mode\": " << i.rowsOtherMode
       << ", \"duplicate_rows_averaged\": " << i.duplicates << ", \"gap_seconds_held\": " << i.gapSeconds
       << ", \"samples_floored\": " << i.floored << ", \"length_s\": " << JsonNumber(i.durationS)
       << ", \"modes_present\": " << SetJson(i.modesPresent) << "}";
    return os.str();
}

std::string
CapacitySummaryJson(const StepSchedule& c, double stopS)
{
    std::ostringstream os;
    os << "\"mean_mbps\": " << JsonNumber(c.Mean(0, stopS) / 1e6)
       << ", \"min_mbps\": " << JsonNumber(c.Min(stopS) / 1e6)
       << ", \"max_mbps\": " << JsonNumber(c.Max(stopS) / 1e6)
       << ", \"changes\": " << (c.Unroll(stopS).size() - 1);
    return os.str();
}

int
VariableDumbbell::Run(const ParamSet& params) const
{
    const TrafficMix mix = TrafficMix::From(params);
    const Time stop = StopTime(params);
    const double stopS = stop.GetSeconds();
    const double maxBps = capacityBps.Max(stopS);
    const double maxDelayS = bottleneckDelayS.Max(stopS);
    const double fixedOneWayS = senderDelay.GetSeconds() + receiverDelay.GetSeconds();
    const double maxRttS = 2 * (fixedOneWayS + maxDelayS);

    uint32_t tcpBuffer = params.GetInt("tcp_buffer");
    if (tcpBuffer == 0)
    {
        // 4x the largest bandwidth-delay product the run reaches (as the dumbbell does).
        tcpBuffer = static_cast<uint32_t>(
            std::min(1e9, std::max<double>(1 << 20, 4 * maxBps / 8 * maxRttS)));
    }
    ConfigureTcp(params.GetInt("segment_size"), tcpBuffer);

    // Leaves are much faster than the bottleneck, so the queue forms at R1 only.
    DumbbellLinks links;
    links.accessRate = DataRate(static_cast<uint64_t>(std::max(10 * maxBps, 1e9)));
    links.senderDelay = senderDelay;
    links.receiverDelay = receiverDelay;
    links.forwardRate = DataRate(static_cast<uint64_t>(std::llround(capacityBps.ValueAt(0))));
    links.uplinkRate = uplinkRate;
    links.bottleneckDelay = Seconds(bottleneckDelayS.ValueAt(0));
    links.deviceQueue = deviceQueue;
    // The queue disc is tuned for the link's mean rate and delay over the run.
    const DataRate meanRate(static_cast<uint64_t>(std::llround(capacityBps.Mean(0, stopS))));
    const Time meanDelay = Seconds(bottleneckDelayS.Mean(0, stopS));
    const DumbbellTopology net(mix, links, params.GetString("qdisc"),
                               QueueDiscOptionsFrom(params, meanRate, meanDelay));
    const Ptr<PointToPointNetDevice> forward = net.GetForwardDevice();
    const Ptr<PointToPointChannel> channel = net.GetChannel();

    // The link follows its schedules (the values at 0 are already set).
    for (const auto& s : capacityBps.Unroll(stopS))
    {
        if (s.t > 0)
        {
            const DataRate r(static_cast<uint64_t>(std::llround(s.value)));
            Simulator::Schedule(Seconds(s.t), [forward, r]() { forward->SetDataRate(r); });
        }
    }
    for (const auto& s : bottleneckDelayS.Unroll(stopS))
    {
        if (s.t > 0)
        {
            const Time d = Seconds(s.value);
            Simulator::Schedule(Seconds(s.t),
                                [channel, d]() { channel->SetAttribute("Delay", TimeValue(d)); });
        }
    }

    FlowTable flows;
    MetricsCollector metrics(flows, WindowStart(params), stop);
    TrafficInstaller traffic(flows, WindowStart(params), stop);
    traffic.SetSocketHook([&metrics](FlowRecord& f, Ptr<Socket> s) { metrics.AttachSocket(f, s); });
    net.InstallTraffic(traffic);

    net.AttachBottleneck(metrics);
    const StepSchedule capacity = capacityBps;
    const StepSchedule delay = bottleneckDelayS;
    metrics.SetCapacity([capacity](double t0, double t1) { return capacity.Integral(t0, t1); },
                        meanRate.GetBitRate());
    const double w0 = WindowStart(params).GetSeconds();
    metrics.SetBaseRtt(Seconds(2 * (fixedOneWayS + delay.Mean(w0, stopS))));
    metrics.AddTimeSeriesColumn("capacity_mbps", [capacity](double t0, double t1) {
        return capacity.Mean(t0, t1) / 1e6;
    });
    metrics.AddRttTimeSeriesColumn("rtt_ms");
    metrics.AddTimeSeriesColumn("base_rtt_ms", [delay, fixedOneWayS](double t0, double t1) {
        return 2e3 * (fixedOneWayS + delay.Mean(t0, t1));
    });
    {
        std::ostringstream os;
        os << "{\"sender_leaf_delay_ms\": " << JsonNumber(senderDelay.GetSeconds() * 1e3)
           << ", \"receiver_leaf_delay_ms\": " << JsonNumber(receiverDelay.GetSeconds() * 1e3)
           << ", \"bottleneck_delay_ms\": {\"mean\": " << JsonNumber(delay.Mean(0, stopS) * 1e3)
           << ", \"min\": " << JsonNumber(delay.Min(stopS) * 1e3)
           << ", \"max\": " << JsonNumber(delay.Max(stopS) * 1e3) << "}"
           << ", \"uplink_mbps\": " << JsonNumber(uplinkRate.GetBitRate() / 1e6)
           << ", \"device_queue_packets\": " << deviceQueue << ", \"tcp_buffer_bytes\": " << tcpBuffer
           << "}";
        metrics.AddExtra("path", os.str());
    }
    if (decorate)
    {
        decorate(metrics);
    }
    if (!params.GetString("timeseries").empty())
    {
        metrics.EnableTimeSeries(params.GetString("timeseries"), params.GetTime("timeseries_interval"));
    }
    RunAndWrite(scenario, params, metrics);
    return 0;
}

} // namespace aqmllm
