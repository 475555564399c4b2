/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * Satellite access: servers send through a ground gateway and a satellite link to user
 * terminals. ns-3.44 has no satellite module: the satellite hop is a point-to-point link
 * whose rate and delay change at run time; the queue disc under test sits on the
 * gateway's forward link, the device queue below it is device_queue packets deep.
 *
 *   server_i --(ground_delay)-- gateway ==(satellite: capacity, delay)== terminal -- receiver_i
 *
 * orbit=geo: a geostationary link, base RTT geo_rtt (default 600 ms: about 4 x 36,000 km
 *   of ground-satellite-ground propagation, 480-560 ms, plus the ground segment and the
 *   terminal's framing), constant capacity geo_rate (default 50 Mbps, a consumer Ka-band
 *   forward link), return link 10 Mbps. No performance-enhancing proxy: TCP runs end to
 *   end, so slow start takes several seconds and TCP buffers are sized to 4x the BDP.
 * orbit=leo: a Starlink-like constellation, where a global controller reassigns
 *   satellites every leo_reconfig_interval (default 15 s). At run start and at every
 *   reconfiguration a new base RTT is drawn uniformly from [leo_rtt_min, leo_rtt_max]
 *   (25-60 ms) and a new capacity from [leo_rate_min, leo_rate_max] (40-160 Mbps), and
 *   with probability leo_outage_prob (0.2) the reconfiguration comes with an outage of a
 *   uniform [leo_outage_min, leo_outage_max] (100-500 ms). The channel's Delay attribute
 *   changes at the reconfiguration (both directions). Return link 20 Mbps.
 *   Outages: ns-3's point-to-point device cannot be stopped, so an outage sets the rate to
 *   let one full packet cross during it; the backlog builds in the queue disc.
 *   Handover gap: when the path gets shorter by D one way, packets sent right after the
 *   change would overtake those still in flight (reordering that real handovers avoid), so
 *   the forward link pauses for D as in an outage; the pause counts as lost capacity.
 * trace=PATH (same format and options as fiveg) replaces the capacity levels (GEO's
 *   constant, LEO's per-reconfiguration draws); LEO's delays, outages and handover gaps
 *   still apply (leo_outage_prob=0 turns outages off).
 *
 * Draws depend only on the seed, not on the queue disc or the traffic. The metrics list
 * the reconfigurations; the time series has capacity_mbps, rtt_ms (mean LastRTT sample of
 * all flows in the interval) and base_rtt_ms.
 */
#include "common/scenario.h"
#include "common/variable-link.h"

#include "ns3/core-module.h"

#include <algorithm>
#include <sstream>

using namespace ns3;
using namespace aqmllm;

namespace
{
/// Rate that lets one packet of this many bytes (MTU + PPP header) cross in a gap.
constexpr double kGapPacketBits = 8.0 * 1502;

void
RequireOrder(const ParamSet& p, const std::string& lo, const std::string& hi, double a, double b)
{
    if (a > b)
    {
        p.Fail("bad value '" + p.GetString(lo) + "' for " + lo + ": must not exceed " + hi + " (" +
               p.GetString(hi) + ")");
    }
}
} // namespace

int
main(int argc, char* argv[])
{
    ParamSet params("satellite");
    DeclareCommonParams(params);
    DeclareTraceParams(params);
    params.Choice("orbit", "leo", {"geo", "leo"}, "geostationary or low-earth-orbit profile")
        .Time("geo_rtt", "600ms", "GEO base round-trip time without queueing", 0.01, 10)
        .Rate("geo_rate", "50Mbps", "GEO forward-link capacity (constant)", 1e5, 100e9)
        .Time("leo_rtt_min", "25ms", "LEO base RTT: smallest value drawn at a reconfiguration", 0.005, 5)
        .Time("leo_rtt_max", "60ms", "LEO base RTT: largest value drawn at a reconfiguration", 0.005, 5)
        .Rate("leo_rate_min", "40Mbps", "LEO capacity: smallest value drawn at a reconfiguration", 1e5, 100e9)
        .Rate("leo_rate_max", "160Mbps", "LEO capacity: largest value drawn at a reconfiguration", 1e5, 100e9)
        .Time("leo_reconfig_interval", "15s", "time between LEO reconfigurations (satellite reassignment)", 0.5, 86400)
        .Double("leo_outage_prob", 0.2, "probability that a LEO reconfiguration comes with an outage", 0, 1)
        .Time("leo_outage_min", "100ms", "shortest LEO outage", 0.001, 60)
        .Time("leo_outage_max", "500ms", "longest LEO outage", 0.001, 60)
        .Time("ground_delay", "1ms", "one-way delay between the servers and the gateway", 0, 1)
        .Rate("uplink_rate", "0bps", "return-link (ACK direction) rate (0bps: GEO 10Mbps, LEO 20Mbps)", 0, 100e9)
        .Int("device_queue", 2, "packets in the gateway's device queue below the queue disc", 1, 10000);
    params.Parse(argc, argv);
    SetupRun(params);

    const bool geo = params.GetString("orbit") == "geo";
    const double ground = params.GetTime("ground_delay").GetSeconds();
    const double stopS = StopTime(params).GetSeconds();
    RequireOrder(params, "leo_rtt_min", "leo_rtt_max", params.GetTime("leo_rtt_min").GetSeconds(),
                 params.GetTime("leo_rtt_max").GetSeconds());
    RequireOrder(params, "leo_rate_min", "leo_rate_max", params.GetRate("leo_rate_min").GetBitRate(),
                 params.GetRate("leo_rate_max").GetBitRate());
    RequireOrder(params, "leo_outage_min", "leo_outage_max", params.GetTime("leo_outage_min").GetSeconds(),
                 params.GetTime("leo_outage_max").GetSeconds());
    const std::string rttParam = geo ? "geo_rtt" : "leo_rtt_min";
    if (params.GetTime(rttParam).GetSeconds() / 2 <= ground)
    {
        params.Fail("bad value '" + params.GetString(rttParam) + "' for " + rttParam +
                    ": must exceed twice ground_delay (" + params.GetString("ground_delay") + ")");
    }

    TraceInfo traceInfo;
    std::optional<StepSchedule> trace = LoadTraceFromParams(params, traceInfo);

    StepSchedule capacity;
    StepSchedule delay; // one-way delay of the satellite hop
    std::ostringstream reconfJson;
    reconfJson << "[";
    if (geo)
    {
        capacity = trace ? *trace : StepSchedule(params.GetRate("geo_rate").GetBitRate());
        delay = StepSchedule(params.GetTime("geo_rtt").GetSeconds() / 2 - ground);
    }
    else
    {
        PortableRng rng(params.GetInt("seed"), 0x1e0);
        const double interval = params.GetTime("leo_reconfig_interval").GetSeconds();
        const double rttMin = params.GetTime("leo_rtt_min").GetSeconds();
        const double rttMax = params.GetTime("leo_rtt_max").GetSeconds();
        const double rateMin = params.GetRate("leo_rate_min").GetBitRate();
        const double rateMax = params.GetRate("leo_rate_max").GetBitRate();
        const double pOutage = params.GetDouble("leo_outage_prob");
        const double outMin = params.GetTime("leo_outage_min").GetSeconds();
        const double outMax = params.GetTime("leo_outage_max").GetSeconds();

        std::vector<StepSchedule::Step> rateSteps;
        std::vector<StepSchedule::Step> delaySteps;
        struct Reconf
        {
            double t, rtt, rate, outage;
        };
        std::vector<Reconf> reconfs;
        for (uint64_t k = 0; k * interval < stopS; ++k)
        {
            // Same draws, in the same order, whatever the trace: the delays do not depend on it.
            Reconf r{k * interval, rng.Uniform(rttMin, rttMax), rng.Uniform(rateMin, rateMax), 0.0};
            const bool out = rng.Uniform() < pOutage;
            const double dur = rng.Uniform(outMin, outMax);
            if (k > 0 && out)
            {
                r.outage = dur;
            }
            reconfs.push_back(r);
            rateSteps.push_back({r.t, r.rate});
            delaySteps.push_back({r.t, r.rtt / 2 - ground});
        }
        delay = StepSchedule(delaySteps, stopS + 1e-9, false);
        const StepSchedule base = trace ? *trace : StepSchedule(rateSteps, stopS + 1e-9, false);
        std::vector<StepSchedule::Override> gaps;
        for (std::size_t k = 0; k < reconfs.size(); ++k)
        {
            const double shorter = k > 0 ? (reconfs[k - 1].rtt - reconfs[k].rtt) / 2 : 0.0;
            const double gap = std::max(reconfs[k].outage, shorter);
            if (gap > 0)
            {
                const double rate = std::min(kGapPacketBits / gap, base.ValueAt(reconfs[k].t));
                gaps.push_back({reconfs[k].t, reconfs[k].t + gap, rate});
            }
            reconfJson << (k ? ", " : "") << "{\"t_s\": " << JsonNumber(reconfs[k].t)
                       << ", \"base_rtt_ms\": " << JsonNumber(2e3 * (ground + delaySteps[k].value))
                       << ", \"rate_mbps\": " << (trace ? std::string("null") : JsonNumber(reconfs[k].rate / 1e6))
                       << ", \"outage_s\": " << JsonNumber(reconfs[k].outage)
                       << ", \"gap_s\": " << JsonNumber(gap) << "}";
        }
        capacity = base.WithOverrides(gaps, stopS);
    }
    reconfJson << "]";

    std::ostringstream capJson;
    capJson << "{\"source\": " << JsonString(trace ? "trace" : geo ? "geo" : "leo") << ", "
            << CapacitySummaryJson(capacity, stopS);
    if (trace)
    {
        capJson << ", \"trace\": " << TraceInfoJson(traceInfo)
                << ", \"trace_offset_s\": " << JsonNumber(params.GetTime("trace_offset").GetSeconds())
                << ", \"floor_mbps\": " << JsonNumber(params.GetRate("trace_floor").GetBitRate() / 1e6)
                << ", \"looped\": " << (traceInfo.durationS < stopS ? "true" : "false");
    }
    capJson << "}";

    DataRate uplink = params.GetRate("uplink_rate");
    if (uplink.GetBitRate() == 0)
    {
        uplink = DataRate(geo ? "10Mbps" : "20Mbps");
    }

    VariableDumbbell net;
    net.scenario = "satellite";
    net.capacityBps = capacity;
    net.bottleneckDelayS = delay;
    net.senderDelay = Seconds(ground);
    net.receiverDelay = Seconds(0);
    net.uplinkRate = uplink;
    net.deviceQueue = params.GetInt("device_queue");
    const std::string capacityJson = capJson.str();
    const std::string reconfigurations = reconfJson.str();
    const std::string orbit = params.GetString("orbit");
    net.decorate = [=](MetricsCollector& m) {
        m.AddExtra("capacity", capacityJson);
        m.AddExtra("orbit", JsonString(orbit));
        if (!geo)
        {
            m.AddExtra("reconfigurations", reconfigurations);
        }
    };
    return net.Run(params);
}
