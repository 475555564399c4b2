/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "aqm-teachers.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace ns3
{

namespace
{

constexpr uint8_t kEcnEct0 = 0x02;
constexpr double kRttMax = 0.1; //!< RTT_max of the RFC 9332 gain derivation, s

uint64_t
SplitMix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t
NameHash(const std::string& name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : name)
    {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

std::string
Trim(const std::string& s)
{
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos)
    {
        return "";
    }
    const auto e = s.find_last_not_of(" \t");
    return s.substr(b, e - b + 1);
}

} // namespace

// ---------------------------------------------------------------- AqmTeacher

AqmTeacher::AqmTeacher(std::string name, double scale)
    : m_name(std::move(name)),
      m_scale(scale),
      m_salt(NameHash(m_name))
{
}

AqmTeacher::~AqmTeacher() = default;

std::vector<std::string>
AqmTeacher::BaseNames()
{
    return {"dualpi2", "pie-step", "codel-like"};
}

std::vector<std::string>
AqmTeacher::DefaultSet()
{
    std::vector<std::string> names;
    for (const auto& base : BaseNames())
    {
        names.push_back(base);
    }
    for (const char* scale : {"@0.5", "@2"})
    {
        for (const auto& base : BaseNames())
        {
            names.push_back(base + scale);
        }
    }
    return names;
}

std::vector<std::string>
AqmTeacher::ParseList(const std::string& list)
{
    std::vector<std::string> out;
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ','))
    {
        item = Trim(item);
        if (!item.empty())
        {
            out.push_back(item);
        }
    }
    return out;
}

std::unique_ptr<AqmTeacher>
AqmTeacher::Create(const std::string& spec, std::string* error)
{
    const std::string name = Trim(spec);
    std::string base = name;
    double scale = 1.0;
    const auto at = name.find('@');
    bool ok = true;
    if (at != std::string::npos)
    {
        base = name.substr(0, at);
        const std::string s = name.substr(at + 1);
        char* end = nullptr;
        scale = std::strtod(s.c_str(), &end);
        ok = !s.empty() && end == s.c_str() + s.size() && std::isfinite(scale) && scale > 0;
    }
    if (ok && base == "dualpi2")
    {
        return std::make_unique<DualPi2Teacher>(name, scale);
    }
    if (ok && base == "pie-step")
    {
        return std::make_unique<PieStepTeacher>(name, scale);
    }
    if (ok && base == "codel-like")
    {
        return std::make_unique<CoDelLikeTeacher>(name, scale);
    }
    if (error != nullptr)
    {
        std::string names;
        for (const auto& b : BaseNames())
        {
            names += (names.empty() ? "" : ", ") + b;
        }
        *error = "unknown teacher '" + spec + "' (want NAME or NAME@SCALE, SCALE > 0; NAME one of " +
                 names + ")";
    }
    return nullptr;
}

const std::string&
AqmTeacher::GetName() const
{
    return m_name;
}

double
AqmTeacher::GetScale() const
{
    return m_scale;
}

void
AqmTeacher::StartReply(const agent::Request& request, agent::Reply& reply)
{
    std::memset(&reply, 0, sizeof(reply));
    reply.seq = request.header.seq;
    reply.status = agent::kReplyOk;
    const uint32_t n = std::min(request.packet_count, agent::kMaxPackets);
    reply.action_count = n;
    for (uint32_t i = 0; i < n; ++i)
    {
        reply.actions[i].uid = request.packets[i].uid;
        reply.actions[i].action = agent::kActionForward;
    }
}

double
AqmTeacher::Uniform(uint64_t uid, uint64_t epoch) const
{
    const uint64_t h = SplitMix64(SplitMix64(uid ^ m_salt) ^ (epoch * 0xd1b54a32d192ed03ULL));
    return double(h >> 11) * 0x1.0p-53;
}

double
AqmTeacher::Last(const agent::Request& request, uint32_t index)
{
    if (index >= request.series_count || request.window_len == 0)
    {
        return 0.0;
    }
    return request.series[index][request.window_len - 1];
}

double
AqmTeacher::HeadSojourn(const agent::Request& request, uint8_t trafficClass)
{
    for (uint32_t i = 0; i < std::min(request.packet_count, agent::kMaxPackets); ++i)
    {
        if (request.packets[i].traffic_class == trafficClass)
        {
            return request.packets[i].sojourn_s;
        }
    }
    return Last(request,
                trafficClass == agent::kClassL ? agent::kSeriesLSojourn : agent::kSeriesCSojourn);
}

double
AqmTeacher::ExpectedPackets(const agent::Request& request, uint8_t trafficClass, double seconds)
{
    const uint32_t n = std::min(request.packet_count, agent::kMaxPackets);
    double bytes = 0;
    uint32_t ofClass = 0;
    for (uint32_t i = 0; i < n; ++i)
    {
        bytes += request.packets[i].size_bytes;
        ofClass += request.packets[i].traffic_class == trafficClass ? 1 : 0;
    }
    const double meanSize = n > 0 && bytes > 0 ? bytes / n : 1500.0;
    const double share = n > 0 ? double(ofClass) / n : 0.5;
    const double rate = Last(request, agent::kSeriesDepartureRate);
    return std::max(1.0, rate * seconds / (8.0 * meanSize) * share);
}

// ---------------------------------------------------------------- DualPI2

DualPi2Teacher::DualPi2Teacher(std::string name, double scale)
    : AqmTeacher(std::move(name), scale)
{
    Reset();
}

void
DualPi2Teacher::Reset()
{
    DualPi2Controller::Params p;
    p.target = Seconds(0.015 * GetScale());
    m_controller = DualPi2Controller(p);
}

const DualPi2Controller&
DualPi2Teacher::GetController() const
{
    return m_controller;
}

void
DualPi2Teacher::Decide(const agent::Request& request, double intervalSeconds, agent::Reply& reply)
{
    DualPi2Controller::Params p = m_controller.GetParams();
    p.tupdate = Seconds(intervalSeconds);
    p.alpha = 0.1 * intervalSeconds / (kRttMax * kRttMax);
    p.beta = 0.3 / kRttMax;
    m_controller.SetParams(p);
    m_controller.Update(Seconds(Last(request, agent::kSeriesCSojourn)),
                        Seconds(Last(request, agent::kSeriesLSojourn)));
    const Time minTh = Seconds(800e-6 * GetScale());
    const Time range = Seconds(400e-6 * GetScale());
    const double pC = m_controller.GetProbC();
    const bool saturated = m_controller.IsLSaturated();
    const bool overloaded = m_controller.IsClassicOverloaded();

    StartReply(request, reply);
    const uint64_t epoch = request.header.epoch;
    for (uint32_t i = 0; i < reply.action_count; ++i)
    {
        // DualPI2's own per-packet rule, one hashed uniform per packet for all its draws.
        const agent::PacketDescriptor& d = request.packets[i];
        const double u = Uniform(d.uid, epoch);
        const bool isL = d.traffic_class == agent::kClassL;
        const double nativeP =
            isL ? DualPi2Controller::RampProb(Seconds(d.sojourn_s), minTh, range) : 0.0;
        const auto rule = m_controller.DecidePacket(
            isL, d.ecn == kEcnEct0, true, nativeP, true,
            [u](double p, DualPi2Controller::DrawKind) { return u < p; });
        reply.actions[i].action = DualPi2Controller::IsDrop(rule)   ? agent::kActionDrop
                                  : DualPi2Controller::IsMark(rule) ? agent::kActionMark
                                                                    : agent::kActionForward;
    }
    const double headL = HeadSojourn(request, agent::kClassL);
    reply.p_l_mark =
        saturated ? 1.0
                  : m_controller.GetProbL(DualPi2Controller::RampProb(Seconds(headL), minTh, range));
    reply.p_c_mark = overloaded ? 0.0 : pC;
    reply.p_c_drop = overloaded ? pC : 0.0;
}

// ---------------------------------------------------------------- PIE + step

PieStepTeacher::PieStepTeacher(std::string name, double scale)
    : AqmTeacher(std::move(name), scale)
{
    Reset();
}

void
PieStepTeacher::Reset()
{
    m_p = 0.0;
    m_oldDelay = 0.0;
    m_burstAllowance = 0.0;
    m_started = false;
}

double
PieStepTeacher::GetProb() const
{
    return m_p;
}

void
PieStepTeacher::Decide(const agent::Request& request, double intervalSeconds, agent::Reply& reply)
{
    constexpr double kMaxBurst = 0.150;
    const double target = 0.015 * GetScale();
    const double step = 0.001 * GetScale();
    const double alpha = 0.125 * intervalSeconds / 0.015;
    const double beta = 1.25;
    if (!m_started)
    {
        m_burstAllowance = kMaxBurst;
        m_started = true;
    }

    // RFC 8033 section 4.2 (the delay is the C head sojourn, as with timestamps).
    const double qdelay = Last(request, agent::kSeriesCSojourn);
    double delta = alpha * (qdelay - target) + beta * (qdelay - m_oldDelay);
    if (m_p < 1e-6)
    {
        delta /= 2048;
    }
    else if (m_p < 1e-5)
    {
        delta /= 512;
    }
    else if (m_p < 1e-4)
    {
        delta /= 128;
    }
    else if (m_p < 1e-3)
    {
        delta /= 32;
    }
    else if (m_p < 1e-2)
    {
        delta /= 8;
    }
    else if (m_p < 1e-1)
    {
        delta /= 2;
    }
    if (m_p >= 0.1 && delta > 0.02)
    {
        delta = 0.02;
    }
    m_p += delta;
    if (qdelay == 0 && m_oldDelay == 0)
    {
        m_p *= 0.98;
    }
    m_p = std::clamp(m_p, 0.0, 1.0);
    const bool suppressed =
        m_burstAllowance > 0 || (m_oldDelay < target / 2 && m_p < 0.2) ||
        Last(request, agent::kSeriesQueueBytes) < 2 * 1500;
    m_burstAllowance = std::max(0.0, m_burstAllowance - intervalSeconds);
    if (m_p == 0 && qdelay < target / 2 && m_oldDelay < target / 2)
    {
        m_burstAllowance = kMaxBurst;
    }
    m_oldDelay = qdelay;

    const double pC = suppressed ? 0.0 : m_p;
    const bool ecnMarks = m_p < 0.1;
    StartReply(request, reply);
    const uint64_t epoch = request.header.epoch;
    for (uint32_t i = 0; i < reply.action_count; ++i)
    {
        const agent::PacketDescriptor& d = request.packets[i];
        uint8_t& action = reply.actions[i].action;
        if (d.traffic_class == agent::kClassL)
        {
            action = d.sojourn_s > step ? agent::kActionMark : agent::kActionForward;
        }
        else if (Uniform(d.uid, epoch) < pC)
        {
            action = (ecnMarks && d.ecn == kEcnEct0) ? agent::kActionMark : agent::kActionDrop;
        }
    }
    reply.p_l_mark = HeadSojourn(request, agent::kClassL) > step ? 1.0 : 0.0;
    reply.p_c_mark = ecnMarks ? pC : 0.0;
    reply.p_c_drop = ecnMarks ? 0.0 : pC;
}

// ---------------------------------------------------------------- CoDel-like

CoDelLikeTeacher::CoDelLikeTeacher(std::string name, double scale)
    : AqmTeacher(std::move(name), scale)
{
    Reset();
}

void
CoDelLikeTeacher::Reset()
{
    m_c = State();
    m_l = State();
}

uint32_t
CoDelLikeTeacher::Advance(State& s,
                          double delay,
                          double now,
                          double epochSeconds,
                          double target,
                          double interval)
{
    if (delay < target)
    {
        s.firstAbove = 0.0;
        if (s.dropping)
        {
            s.dropping = false;
        }
        return 0;
    }
    if (!s.dropping)
    {
        if (s.firstAbove == 0.0)
        {
            s.firstAbove = now + interval;
            return 0;
        }
        if (now < s.firstAbove)
        {
            return 0;
        }
        // Enter the signalling state (RFC 8289: resume near the previous rate if it was
        // left recently).
        s.dropping = true;
        const uint32_t delta = s.count - s.lastCount;
        s.count = (delta > 1 && now - s.dropNext < 16 * interval) ? delta : 1;
        s.lastCount = s.count;
        s.dropNext = now;
    }
    uint32_t n = 0;
    const double end = now + epochSeconds;
    while (s.dropNext < end && n < 100000)
    {
        ++n;
        ++s.count;
        s.dropNext += interval / std::sqrt(double(s.count));
    }
    return n;
}

void
CoDelLikeTeacher::Decide(const agent::Request& request, double intervalSeconds, agent::Reply& reply)
{
    const double now = double(request.header.sim_time_ns) * 1e-9;
    const double targetC = 0.005 * GetScale();
    const double intervalC = 0.100 * GetScale();
    const double targetL = 0.001 * GetScale();
    const double intervalL = 0.016 * GetScale();
    const uint32_t nC = Advance(m_c,
                                HeadSojourn(request, agent::kClassC),
                                now,
                                intervalSeconds,
                                targetC,
                                intervalC);
    const uint32_t nL = Advance(m_l,
                                HeadSojourn(request, agent::kClassL),
                                now,
                                intervalSeconds,
                                targetL,
                                intervalL);
    const double pC =
        std::min(1.0, nC / ExpectedPackets(request, agent::kClassC, intervalSeconds));
    const double pL =
        std::min(1.0, nL / ExpectedPackets(request, agent::kClassL, intervalSeconds));

    StartReply(request, reply);
    const uint64_t epoch = request.header.epoch;
    for (uint32_t i = 0; i < reply.action_count; ++i)
    {
        const agent::PacketDescriptor& d = request.packets[i];
        uint8_t& action = reply.actions[i].action;
        const bool isL = d.traffic_class == agent::kClassL;
        if (d.sojourn_s < (isL ? targetL : targetC) || Uniform(d.uid, epoch) >= (isL ? pL : pC))
        {
            continue;
        }
        action = (isL || d.ecn == kEcnEct0) ? agent::kActionMark : agent::kActionDrop;
    }
    reply.p_l_mark = pL;
    reply.p_c_mark = pC;
    reply.p_c_drop = 0.0;
}

} // namespace ns3
