/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_SCENARIO_METRICS_H
#define AQM_LLM_SCENARIO_METRICS_H

#include "params.h"
#include "traffic.h"

#include "ns3/net-device.h"
#include "ns3/queue-disc.h"
#include "ns3/queue.h"
#include "ns3/socket.h"

#include <array>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ns3
{
class WifiPhy;
}

namespace aqmllm
{

/// \brief Distribution summary: count, mean, p50, p95, p99, max.
struct Summary
{
    uint64_t count{0};
    double mean{0}, p50{0}, p95{0}, p99{0}, max{0};
    static Summary Of(std::vector<double> samples);
    std::string Json() const;
};

/**
 * \brief Everything a run measures at the bottleneck and at the endpoints, written as one
 * metrics JSON (and optionally a time-series CSV).
 *
 * Steady-state figures count only [warmup, stop]. A packet's class is its flow's class
 * (by destination address and port), so a CE-marked classic packet stays classic.
 */
class MetricsCollector
{
  public:
    MetricsCollector(FlowTable& flows, ns3::Time windowStart, ns3::Time stop);

    /// \brief Trace the queue disc under test (sojourn, drops and marks by reason and class).
    void AttachQueueDisc(ns3::Ptr<ns3::QueueDisc> qdisc);
    /// \brief Hook RTT samples of a sender socket.
    void AttachSocket(FlowRecord& flow, ns3::Ptr<ns3::Socket> socket);
    /// \brief Count bytes sent on the bottleneck link (utilisation = bits / capacity integral).
    void AttachLinkTx(ns3::Ptr<ns3::NetDevice> device);
    /// \brief Watch the device queue below the queue disc (its peak occupancy is reported).
    void AttachDeviceQueue(ns3::Ptr<ns3::Object> queue);
    /// \brief Wi-Fi: utilisation is the AP's transmit airtime share; A-MPDU sizes are recorded.
    void AttachWifiPhy(ns3::Ptr<ns3::WifiPhy> phy);
    /// \brief Link capacity: bits the link could carry in [t0, t1] seconds.
    void SetCapacity(std::function<double(double, double)> bitsBetween, double nominalBps);
    /// \brief Base RTT of the path without queueing (for RTT inflation).
    void SetBaseRtt(ns3::Time rtt) { m_baseRtt = rtt; }
    /// \brief Write a time series every \p interval to \p path (CSV).
    void EnableTimeSeries(const std::string& path, ns3::Time interval);
    /**
     * \brief An extra time-series column, appended after the standard ones: at each sample
     * \p value is called with the interval [t0, t1] in seconds (NaN writes an empty cell).
     * Call before the simulation starts.
     */
    void AddTimeSeriesColumn(const std::string& name, std::function<double(double, double)> value);
    /// \brief A time-series column with the mean RTT sample (LastRTT, all flows) in each interval.
    void AddRttTimeSeriesColumn(const std::string& name = "rtt_ms");
    /// \brief Extra JSON members ("name": value) for scenario-specific facts.
    void AddExtra(const std::string& name, const std::string& jsonValue) { m_extra[name] = jsonValue; }

    /// \brief The metrics document.
    std::string Json(const std::string& scenario, const ParamSet& params, double wallSeconds) const;

  private:
    struct ClassStats
    {
        std::vector<double> sojournMs;
        uint64_t enqueued{0};
        uint64_t dequeued{0};
        uint64_t drops{0};
        uint64_t marks{0};
        std::map<std::string, uint64_t> dropReasons;
        std::map<std::string, uint64_t> markReasons;
        // current time-series bin
        double binSojournSum{0};
        uint64_t binCount{0};
        uint64_t binMarks{0};
        uint64_t binDrops{0};
    };

    bool Classify(ns3::Ptr<const ns3::QueueDiscItem> item, FlowClass& cls) const;
    ClassStats& Stats(FlowClass c) { return m_classes[c == FlowClass::L4s ? 0 : 1]; }
    bool InWindow() const;
    void OnEnqueue(ns3::Ptr<const ns3::QueueDiscItem> item);
    void OnDequeue(ns3::Ptr<const ns3::QueueDiscItem> item);
    void OnDrop(ns3::Ptr<const ns3::QueueDiscItem> item, const char* reason);
    void OnMark(ns3::Ptr<const ns3::QueueDiscItem> item, const char* reason);
    void OnRtt(uint32_t flowId, ns3::Time oldRtt, ns3::Time newRtt);
    void OnLinkTx(ns3::Ptr<const ns3::Packet> p);
    void SampleTimeSeries();

    FlowTable& m_flows;
    ns3::Time m_windowStart;
    ns3::Time m_stop;
    ns3::Time m_baseRtt;
    std::array<ClassStats, 2> m_classes;
    uint64_t m_otherPackets{0};
    ns3::Ptr<ns3::QueueDisc> m_qdisc;
    uint64_t m_linkTxBytesWindow{0};
    std::function<double(double, double)> m_capacityBits;
    double m_nominalBps{0};
    uint32_t m_deviceQueuePeak{0};
    bool m_wifi{false};
    double m_airtimeTxS{0};
    uint64_t m_ampduCount{0};
    uint64_t m_ampduMpdus{0};
    std::unique_ptr<std::ofstream> m_ts;
    ns3::Time m_tsInterval;
    std::vector<uint32_t> m_tsFlows;
    std::map<std::string, std::string> m_extra;
    std::vector<std::pair<std::string, std::function<double(double, double)>>> m_tsColumns;
    double m_rttBinSumMs{0}; //!< RTT samples (all flows) since the last time-series sample
    uint64_t m_rttBinCount{0};
};

} // namespace aqmllm

#endif
