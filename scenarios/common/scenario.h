/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_SCENARIO_COMMON_H
#define AQM_LLM_SCENARIO_COMMON_H

#include "metrics.h"
#include "params.h"
#include "traffic.h"

#include "ns3/aqm-queue-disc-registry.h"

#include <string>

namespace aqmllm
{

/// \brief Declare the parameters every scenario takes (seed, duration, queue disc, ...).
void DeclareCommonParams(ParamSet& params);

/// \brief Seed the RNG, set TCP defaults; fails (exit 2) on inconsistent settings.
void SetupRun(const ParamSet& params);

/// \brief Queue disc options from the common parameters and the bottleneck link.
ns3::AqmQueueDiscOptions QueueDiscOptionsFrom(const ParamSet& params,
                                              ns3::DataRate linkRate,
                                              ns3::Time linkDelay);

/// \brief Steady-state window start (warm-up end) and stop time.
ns3::Time WindowStart(const ParamSet& params);
ns3::Time StopTime(const ParamSet& params);

/**
 * \brief Run the simulation to the stop time (printing `@progress` lines on stderr when
 * asked), then write the metrics JSON to the `output` parameter's path (stdout if empty).
 */
void RunAndWrite(const std::string& scenario, const ParamSet& params, MetricsCollector& metrics);

} // namespace aqmllm

#endif
