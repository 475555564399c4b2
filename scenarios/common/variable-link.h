/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_SCENARIO_VARIABLE_LINK_H
#define AQM_LLM_SCENARIO_VARIABLE_LINK_H

#include "capacity-trace.h"
#include "scenario.h"

#include "ns3/data-rate.h"
#include "ns3/nstime.h"

#include <functional>
#include <optional>
#include <string>

namespace aqmllm
{

/**
 * \brief Declare the capacity-trace parameters shared by the fiveg and satellite scenarios:
 * trace, trace_floor, trace_offset, modes.
 */
void DeclareTraceParams(ParamSet& params);

/**
 * \brief Load the trace the parameters name (none if `trace` is empty). Bad input (missing
 * file, unknown mode, offset past the end, ...) fails with one line and exit 2, before
 * anything is simulated.
 */
std::optional<StepSchedule> LoadTraceFromParams(const ParamSet& params, TraceInfo& info);

/// \brief The trace facts as a JSON object.
std::string TraceInfoJson(const TraceInfo& info);

/// \brief {"mean_mbps", "min_mbps", "max_mbps", "changes"} of a capacity over [0, stop].
std::string CapacitySummaryJson(const StepSchedule& capacityBps, double stopS);

/**
 * \brief A dumbbell whose bottleneck changes at run time: the DumbbellTopology (a leaf
 * pair per long-lived flow, one shared bottleneck R1 -> R2 with the queue disc under test
 * on R1) whose forward rate follows \c capacityBps (PointToPointNetDevice::SetDataRate at
 * each change) and whose one-way delay follows \c bottleneckDelayS (the channel's Delay
 * attribute, both directions). The device queue below the queue disc is \c deviceQueue
 * packets deep.
 *
 *   sender_i --(senderDelay)-- R1 ==(capacity, qdisc; delay)== R2 --(receiverDelay)-- receiver_i
 *
 * Utilisation is link bits over the integral of \c capacityBps; the time series gains
 * the columns capacity_mbps (mean over the interval), rtt_ms (mean LastRTT sample of all
 * flows in the interval) and base_rtt_ms (mean base RTT of the path over the interval).
 */
struct VariableDumbbell
{
    std::string scenario;
    StepSchedule capacityBps;       //!< forward (downlink) capacity, bit/s
    StepSchedule bottleneckDelayS;  //!< one-way delay of the bottleneck channel, s
    ns3::Time senderDelay;          //!< one-way delay of each sender leaf
    ns3::Time receiverDelay;        //!< one-way delay of each receiver leaf
    ns3::DataRate uplinkRate;       //!< reverse (ACK) direction of the bottleneck
    uint32_t deviceQueue{2};
    /// scenario-specific metrics (AddExtra, more columns), called before the run
    std::function<void(MetricsCollector&)> decorate;

    /// \brief Build, run, write the metrics; returns the exit status.
    int Run(const ParamSet& params) const;
};

} // namespace aqmllm

#endif
