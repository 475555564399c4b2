/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "dual-pi2-controller.h"

#include <algorithm>

namespace ns3
{

DualPi2Controller::Params
DualPi2Controller::Params::Rfc9332(Time target, Time rttMax, double k)
{
    Params p;
    p.target = target;
    p.tupdate = std::min(target, rttMax / 3);
    const double rtt = rttMax.GetSeconds();
    p.alpha = 0.1 * p.tupdate.GetSeconds() / (rtt * rtt);
    p.beta = 0.3 / rtt;
    p.k = k;
    return p;
}

DualPi2Controller::Params
DualPi2Controller::Params::Linux()
{
    Params p;
    p.target = MilliSeconds(15);
    p.tupdate = MilliSeconds(16);
    p.alpha = 0.16;
    p.beta = 3.2;
    p.k = 2.0;
    return p;
}

DualPi2Controller::DualPi2Controller()
    : DualPi2Controller(Params())
{
}

DualPi2Controller::DualPi2Controller(const Params& params)
    : m_params(params)
{
}

void
DualPi2Controller::SetParams(const Params& params)
{
    m_params = params;
    m_probBase = std::clamp(m_probBase, 0.0, m_params.maxProbBase);
}

const DualPi2Controller::Params&
DualPi2Controller::GetParams() const
{
    return m_params;
}

void
DualPi2Controller::Reset()
{
    m_probBase = 0.0;
    m_prevDelay = 0.0;
    m_updates = 0;
}

double
DualPi2Controller::Update(Time queueDelayC, Time queueDelayL)
{
    Time delay = queueDelayC;
    if (m_params.delaySource == DelaySource::MAX)
    {
        delay = std::max(queueDelayC, queueDelayL);
    }
    const double q = delay.GetSeconds();
    const double target = m_params.target.GetSeconds();
    // RFC 9332 Appendix A: p' += alpha * (qdelay - target) + beta * (qdelay - prev_qdelay)
    double p = m_probBase + m_params.alpha * (q - target) + m_params.beta * (q - m_prevDelay);
    m_probBase = std::clamp(p, 0.0, m_params.maxProbBase);
    m_prevDelay = q;
    ++m_updates;
    return m_probBase;
}

double
DualPi2Controller::GetProbBase() const
{
    return m_probBase;
}

double
DualPi2Controller::GetProbC() const
{
    return m_probBase * m_probBase;
}

double
DualPi2Controller::GetProbCL() const
{
    return std::min(GetCoupledProbRaw(), 1.0);
}

double
DualPi2Controller::GetCoupledProbRaw() const
{
    return m_params.k * m_probBase;
}

double
DualPi2Controller::GetProbCMax() const
{
    return std::min(1.0 / (m_params.k * m_params.k), 1.0);
}

bool
DualPi2Controller::IsClassicOverloaded() const
{
    return GetProbC() >= GetProbCMax();
}

bool
DualPi2Controller::IsLSaturated() const
{
    return GetCoupledProbRaw() >= 1.0;
}

double
DualPi2Controller::GetProbL(double nativeProbL) const
{
    return std::max(nativeProbL, GetProbCL());
}

Time
DualPi2Controller::GetLastDelay() const
{
    return Seconds(m_prevDelay);
}

uint64_t
DualPi2Controller::GetUpdateCount() const
{
    return m_updates;
}

void
DualPi2Controller::SetProbBase(double p)
{
    m_probBase = std::clamp(p, 0.0, m_params.maxProbBase);
}

double
DualPi2Controller::RampProb(Time sojourn, Time minTh, Time range)
{
    if (sojourn < minTh)
    {
        return 0.0;
    }
    if (range.IsZero() || sojourn >= minTh + range)
    {
        return 1.0;
    }
    return (sojourn - minTh).GetSeconds() / range.GetSeconds();
}

double
DualPi2Controller::StepProb(Time sojourn, Time threshold)
{
    return sojourn > threshold ? 1.0 : 0.0;
}

bool
DualPi2Controller::Recur(double& count, double likelihood)
{
    count += likelihood;
    if (count >= 1.0)
    {
        count -= 1.0;
        return true;
    }
    return false;
}

bool
DualPi2Controller::IsDrop(PacketRule rule)
{
    return rule == PacketRule::OVERLOAD_L_DROP || rule == PacketRule::CLASSIC_DROP ||
           rule == PacketRule::OVERLOAD_CLASSIC_DROP;
}

bool
DualPi2Controller::IsMark(PacketRule rule)
{
    return rule == PacketRule::NATIVE_MARK || rule == PacketRule::COUPLED_MARK ||
           rule == PacketRule::OVERLOAD_L_MARK || rule == PacketRule::CLASSIC_MARK;
}

} // namespace ns3
