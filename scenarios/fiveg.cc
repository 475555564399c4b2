/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * 5G downlink: servers send to UEs through a gNB whose radio downlink is the bottleneck.
 * ns-3.44 (the wheel) has no NR module, so the RAN is a point-to-point link whose rate
 * follows a capacity series at run time (PointToPointNetDevice::SetDataRate); the queue
 * disc under test sits on the gNB's downlink, the device queue below it is device_queue
 * packets deep, so the standing queue forms in the queue disc (as in a gNB's per-UE
 * RLC/PDCP buffer that the AQM manages).
 *
 *   server_i --(core, rtt/2 - ran_delay)-- gNB ==(radio: capacity series, ran_delay)== UE side -- receiver_i
 *
 * Base delay: rtt (default 36 ms) is the path's RTT without queueing, of which ran_delay
 * (default 5 ms one way: air interface, scheduling grant and HARQ, modelled as propagation)
 * is on the radio hop and the rest on the core / transport side. 30-40 ms is typical of
 * an NSA 5G UE to a nearby server; the Irish dataset's pings (to a remote server, under
 * load) have a median of 72 ms: set rtt=72ms to match it. The radio hop's delay is small
 * on purpose: what a UE receives in a second is what the radio sent in (almost) that
 * second, so per-second goodput compares with per-second capacity.
 *
 * Capacity, one of:
 * - trace=PATH: a measured trace (time_s,mbps rows, or a file of the 5G dataset of Raca
 *   et al., MMSys 2020, DL_bitrate kbit/s, one row a second): duplicate stamps averaged,
 *   gaps hold the last value, seconds below trace_floor (zero-rate seconds: the dataset's
 *   achieved rate is a lower bound on capacity and is 0 when idle) raised to it, rows of
 *   other network modes removed (modes=5G), start at trace_offset; repeats if the run
 *   outlasts it.
 * - the seeded LOS/NLOS blockage model (default): a two-state Markov chain with
 *   exponential dwell times; the capacity is redrawn every capacity_interval as the state's
 *   mean times a log-normal factor (mean 1, log-sd capacity_sigma). Profiles:
 *     midband (n78, 3.5 GHz, 100 MHz): LOS 150 Mb/s (mean dwell 10 s), NLOS 40 Mb/s (4 s),
 *                                      sigma 0.2, redrawn every 500 ms; mean ~119 Mb/s
 *     mmwave  (n257, 28 GHz, 400 MHz): LOS 400 Mb/s (4 s), blocked 25 Mb/s (1 s),
 *                                      sigma 0.3, redrawn every 100 ms; mean ~325 Mb/s
 *   (mmwave runs simulate about 3x slower than midband.) The series depends only on the
 *   seed and the model parameters, not on the queue disc or the traffic.
 *
 * Utilisation is link bits over the capacity integral; the time series has capacity_mbps,
 * rtt_ms and base_rtt_ms columns.
 */
#include "common/scenario.h"
#include "common/variable-link.h"

#include "ns3/core-module.h"

#include <sstream>

using namespace ns3;
using namespace aqmllm;

int
main(int argc, char* argv[])
{
    ParamSet params("fiveg");
    DeclareCommonParams(params);
    DeclareTraceParams(params);
    params.Choice("profile", "midband", {"midband", "mmwave"},
                  "capacity model without a trace: midband (3.5 GHz) or mmwave (28 GHz) LOS/NLOS blockage")
        .Rate("los_rate", "0bps", "mean capacity in line of sight (0bps: the profile's, 150 / 400 Mbps)", 0, 100e9)
        .Rate("nlos_rate", "0bps", "mean capacity when blocked / shadowed (0bps: the profile's, 40 / 25 Mbps)", 0, 100e9)
        .Time("los_dwell", "0s", "mean time in line of sight, exponential (0s: the profile's, 10s / 4s)", 0, 1e6)
        .Time("nlos_dwell", "0s", "mean time blocked, exponential (0s: the profile's, 4s / 1s)", 0, 1e6)
        .Double("capacity_sigma", -1,
                "log-standard deviation of the per-sample capacity factor (negative: the profile's, 0.2 / 0.3)", -1, 3)
        .Time("capacity_interval", "0s", "capacity redrawn this often (0s: the profile's, 500ms / 100ms)", 0, 3600)
        .Time("rtt", "36ms", "base round-trip time without queueing (core + radio)", 0.002, 5)
        .Time("ran_delay", "5ms", "one-way delay of the radio hop (gNB to UE), part of rtt/2", 0, 2.5)
        .Rate("uplink_rate", "50Mbps", "uplink (ACK direction) rate of the radio hop", 1e5, 100e9)
        .Int("device_queue", 2, "packets in the gNB's device queue below the queue disc", 1, 10000);
    params.Parse(argc, argv);
    SetupRun(params);

    const Time rtt = params.GetTime("rtt");
    const Time ranDelay = params.GetTime("ran_delay");
    if (ranDelay >= rtt / 2)
    {
        params.Fail("bad value '" + params.GetString("ran_delay") + "' for ran_delay: must be below rtt/2 (" +
                    JsonNumber(rtt.GetSeconds() * 500) + " ms)");
    }
    const double stopS = StopTime(params).GetSeconds();

    TraceInfo traceInfo;
    std::optional<StepSchedule> trace = LoadTraceFromParams(params, traceInfo);
    StepSchedule capacity;
    std::ostringstream capJson;
    if (trace)
    {
        capacity = *trace;
        capJson << "{\"source\": \"trace\", " << CapacitySummaryJson(capacity, stopS)
                << ", \"trace\": " << TraceInfoJson(traceInfo)
                << ", \"trace_offset_s\": " << JsonNumber(params.GetTime("trace_offset").GetSeconds())
                << ", \"floor_mbps\": " << JsonNumber(params.GetRate("trace_floor").GetBitRate() / 1e6)
                << ", \"looped\": " << (traceInfo.durationS < stopS ? "true" : "false") << "}";
    }
    else
    {
        BlockageModel model = BlockageModel::Profile(params.GetString("profile"));
        if (params.GetRate("los_rate").GetBitRate() > 0)
        {
            model.losBps = params.GetRate("los_rate").GetBitRate();
        }
        if (params.GetRate("nlos_rate").GetBitRate() > 0)
        {
            model.nlosBps = params.GetRate("nlos_rate").GetBitRate();
        }
        if (params.GetTime("los_dwell").IsStrictlyPositive())
        {
            model.losDwellS = params.GetTime("los_dwell").GetSeconds();
        }
        if (params.GetTime("nlos_dwell").IsStrictlyPositive())
        {
            model.nlosDwellS = params.GetTime("nlos_dwell").GetSeconds();
        }
        if (params.GetDouble("capacity_sigma") >= 0)
        {
            model.sigma = params.GetDouble("capacity_sigma");
        }
        if (params.GetTime("capacity_interval").IsStrictlyPositive())
        {
            model.intervalS = params.GetTime("capacity_interval").GetSeconds();
        }
        model.floorBps = params.GetRate("trace_floor").GetBitRate();
        double losShare = 0;
        capacity = model.Generate(stopS, params.GetInt("seed"), &losShare);
        capJson << "{\"source\": \"model\", \"profile\": " << JsonString(params.GetString("profile")) << ", "
                << CapacitySummaryJson(capacity, stopS)
                << ", \"model\": {\"los_mbps\": " << JsonNumber(model.losBps / 1e6)
                << ", \"nlos_mbps\": " << JsonNumber(model.nlosBps / 1e6)
                << ", \"los_dwell_s\": " << JsonNumber(model.losDwellS)
                << ", \"nlos_dwell_s\": " << JsonNumber(model.nlosDwellS)
                << ", \"sigma\": " << JsonNumber(model.sigma)
                << ", \"interval_s\": " << JsonNumber(model.intervalS)
                << ", \"floor_mbps\": " << JsonNumber(model.floorBps / 1e6)
                << "}, \"los_share\": " << JsonNumber(losShare) << "}";
    }

    VariableDumbbell net;
    net.scenario = "fiveg";
    net.capacityBps = capacity;
    net.bottleneckDelayS = StepSchedule(ranDelay.GetSeconds());
    net.senderDelay = rtt / 2 - ranDelay;
    net.receiverDelay = Seconds(0);
    net.uplinkRate = params.GetRate("uplink_rate");
    net.deviceQueue = params.GetInt("device_queue");
    const std::string capacityJson = capJson.str();
    net.decorate = [capacityJson](MetricsCollector& m) { m.AddExtra("capacity", capacityJson); };
    return net.Run(params);
}
