/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "scenario.h"

#include "ns3/core-module.h"

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
        .Bool("progress", false, "print '@progress <t> <total>' lines on stderr");
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
    const auto t0 = std::chrono::steady_clock::now();
    Simulator::Stop(stop);
    Simulator::Run();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
