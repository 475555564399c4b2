/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "agent-message-validation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

namespace ns3
{
namespace agent
{

namespace
{

std::string
Num(double v)
{
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.17g", v);
    return buf;
}

} // namespace

bool
ValidateRequest(const Request& r, std::string* why)
{
    auto bad = [&](std::string message) {
        if (why != nullptr)
        {
            *why = std::move(message);
        }
        return false;
    };
    auto capacity = [&](const char* field, uint32_t value, uint32_t cap) {
        return bad(std::string(field) + " = " + std::to_string(value) + " exceeds capacity " +
                   std::to_string(cap));
    };
    // Read each count once: the checks below use these copies.
    const uint32_t seriesCount = r.series_count;
    const uint32_t windowLen = r.window_len;
    const uint32_t scalarCount = r.scalar_count;
    const uint32_t packetCount = r.packet_count;
    const uint32_t rewardCount = r.reward_count;
    if (seriesCount > kMaxSeries)
    {
        return capacity("series_count", seriesCount, kMaxSeries);
    }
    if (windowLen > kWindow)
    {
        return capacity("window_len", windowLen, kWindow);
    }
    if (scalarCount > kMaxScalars)
    {
        return capacity("scalar_count", scalarCount, kMaxScalars);
    }
    if (packetCount > kMaxPackets)
    {
        return capacity("packet_count", packetCount, kMaxPackets);
    }
    if (rewardCount > kMaxRewards)
    {
        return capacity("reward_count", rewardCount, kMaxRewards);
    }
    if (r.header.sim_time_ns < 0)
    {
        return bad("header.sim_time_ns = " + std::to_string(r.header.sim_time_ns) +
                   " is negative");
    }
    auto finite = [&](double v, const std::string& field) {
        if (std::isnan(v))
        {
            return bad(field + " is NaN");
        }
        if (std::isinf(v))
        {
            return bad(field + " is infinite");
        }
        return true;
    };
    for (uint32_t i = 0; i < seriesCount; ++i)
    {
        for (uint32_t j = 0; j < windowLen; ++j)
        {
            const double v = r.series[i][j];
            if (!std::isfinite(v) || (i < kSeriesDefined && v < 0))
            {
                std::string field = "series[" + std::to_string(i) + "][" + std::to_string(j) + "]";
                if (i < kSeriesDefined)
                {
                    field += std::string(" (") + kSeriesNames[i] + ")";
                }
                if (!finite(v, field))
                {
                    return false;
                }
                return bad(field + " = " + Num(v) + " is negative");
            }
        }
    }
    for (uint32_t i = 0; i < scalarCount; ++i)
    {
        if (!std::isfinite(r.scalars[i]))
        {
            return finite(r.scalars[i], "scalars[" + std::to_string(i) + "]");
        }
    }
    for (uint32_t i = 0; i < packetCount; ++i)
    {
        const PacketDescriptor& p = r.packets[i];
        const bool ok = p.size_bytes >= 0 && p.size_bytes <= kMaxPacketSize &&
                        std::isfinite(p.sojourn_s) && p.sojourn_s >= 0 &&
                        p.traffic_class <= kClassC && p.ecn <= 3;
        if (ok)
        {
            continue; // the message below is only built for a bad descriptor
        }
        const std::string field = "packets[" + std::to_string(i) + "]";
        if (p.size_bytes < 0)
        {
            return bad(field + ".size_bytes = " + std::to_string(p.size_bytes) + " is negative");
        }
        if (p.size_bytes > kMaxPacketSize)
        {
            return bad(field + ".size_bytes = " + std::to_string(p.size_bytes) + " exceeds " +
                       std::to_string(kMaxPacketSize));
        }
        if (!finite(p.sojourn_s, field + ".sojourn_s"))
        {
            return false;
        }
        if (p.sojourn_s < 0)
        {
            return bad(field + ".sojourn_s = " + Num(p.sojourn_s) + " is negative");
        }
        if (p.traffic_class > kClassC)
        {
            return bad(field + ".traffic_class = " + std::to_string(p.traffic_class) +
                       " is neither 0 (L) nor 1 (C)");
        }
        return bad(field + ".ecn = " + std::to_string(p.ecn) + " is not an ECN codepoint 0..3");
    }
    for (uint32_t i = 0; i < rewardCount; ++i)
    {
        if (!std::isfinite(r.rewards[i]))
        {
            return finite(r.rewards[i], "rewards[" + std::to_string(i) + "]");
        }
    }
    return true;
}

bool
ValidateReply(const Reply& reply, const Request* request, std::string* why)
{
    auto bad = [&](std::string message) {
        if (why != nullptr)
        {
            *why = std::move(message);
        }
        return false;
    };
    const uint32_t status = reply.status;
    const uint32_t actionCount = reply.action_count;
    if (status >= kReplyStatusCount)
    {
        return bad("status = " + std::to_string(status) + " is not 0 (ok), 1 (fallback) or 2 (error)");
    }
    if (actionCount > kMaxPackets)
    {
        return bad("action_count = " + std::to_string(actionCount) + " exceeds capacity " +
                   std::to_string(kMaxPackets));
    }
    const std::pair<const char*, double> probabilities[] = {
        {"p_l_mark", reply.p_l_mark}, {"p_c_drop", reply.p_c_drop}, {"p_c_mark", reply.p_c_mark}};
    for (const auto& [name, p] : probabilities)
    {
        if (std::isnan(p))
        {
            return bad(std::string(name) + " is NaN");
        }
        if (!(p >= 0.0 && p <= 1.0))
        {
            return bad(std::string(name) + " = " + Num(p) + " is not a probability in [0, 1]");
        }
    }
    uint32_t limit = kMaxPackets;
    if (request != nullptr)
    {
        limit = std::min(request->packet_count, kMaxPackets);
        if (actionCount > limit)
        {
            return bad("action_count = " + std::to_string(actionCount) +
                       " exceeds the request's packet_count " + std::to_string(limit));
        }
    }
    for (uint32_t i = 0; i < actionCount; ++i)
    {
        const PacketAction& a = reply.actions[i];
        if (a.action >= kActionCount)
        {
            return bad("actions[" + std::to_string(i) + "].action = " + std::to_string(a.action) +
                       " is not 0 (forward), 1 (drop) or 2 (mark)");
        }
        if (request != nullptr && a.uid != request->packets[i].uid)
        {
            return bad("actions[" + std::to_string(i) + "].uid = " + std::to_string(a.uid) +
                       " does not match packets[" + std::to_string(i) +
                       "].uid = " + std::to_string(request->packets[i].uid));
        }
    }
    return true;
}

// ---------------------------------------------------------------- names, cleanup

} // namespace agent
} // namespace ns3
