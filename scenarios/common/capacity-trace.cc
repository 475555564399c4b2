/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "capacity-trace.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace aqmllm
{

// ---------------------------------------------------------------------------------------
// StepSchedule

StepSchedule::StepSchedule(double value)
    : StepSchedule({{0.0, value}}, 1.0, false)
{
}

StepSchedule::StepSchedule(std::vector<Step> steps, double period, bool loops)
    : m_period(period),
      m_loops(loops)
{
    if (steps.empty() || steps.front().t != 0.0)
    {
        throw std::invalid_argument("StepSchedule: the first step must start at 0");
    }
    m_steps.clear();
    for (const Step& s : steps)
    {
        if (!m_steps.empty() && s.t < m_steps.back().t)
        {
            throw std::invalid_argument("StepSchedule: steps must be sorted by time");
        }
        if (!m_steps.empty() && s.t == m_steps.back().t)
        {
            m_steps.back().value = s.value; // the later one wins
        }
        else
        {
            m_steps.push_back(s);
        }
    }
    if (!(m_period > m_steps.back().t))
    {
        throw std::invalid_argument("StepSchedule: period must exceed the last step's time");
    }
    m_cumulative.assign(m_steps.size(), 0.0);
    for (std::size_t i = 1; i < m_steps.size(); ++i)
    {
        m_cumulative[i] =
            m_cumulative[i - 1] + m_steps[i - 1].value * (m_steps[i].t - m_steps[i - 1].t);
    }
    m_periodIntegral = m_cumulative.back() + m_steps.back().value * (m_period - m_steps.back().t);
}

namespace
{
std::size_t
StepIndex(const std::vector<StepSchedule::Step>& steps, double t)
{
    auto it = std::upper_bound(steps.begin(), steps.end(), t,
                               [](double x, const StepSchedule::Step& s) { return x < s.t; });
    return it == steps.begin() ? 0 : static_cast<std::size_t>(it - steps.begin()) - 1;
}
} // namespace

double
StepSchedule::ValueAt(double t) const
{
    if (t < 0)
    {
        t = 0;
    }
    if (m_loops)
    {
        t = std::fmod(t, m_period);
    }
    return m_steps[StepIndex(m_steps, t)].value;
}

double
StepSchedule::IntegralFromZero(double t) const
{
    if (t <= 0)
    {
        return 0.0;
    }
    double whole = 0.0;
    if (m_loops)
    {
        const double n = std::floor(t / m_period);
        whole = n * m_periodIntegral;
        t -= n * m_period;
    }
    const std::size_t i = StepIndex(m_steps, t);
    return whole + m_cumulative[i] + m_steps[i].value * (t - m_steps[i].t);
}

double
StepSchedule::Integral(double t0, double t1) const
{
    return IntegralFromZero(t1) - IntegralFromZero(t0);
}

double
StepSchedule::Mean(double t0, double t1) const
{
    return t1 > t0 ? Integral(t0, t1) / (t1 - t0) : ValueAt(t0);
}

std::vector<StepSchedule::Step>
StepSchedule::Unroll(double until) const
{
    std::vector<Step> out;
    for (uint64_t k = 0;; ++k)
    {
        const double base = k * m_period;
        if (base >= until && k > 0)
        {
            break;
        }
        for (const Step& s : m_steps)
        {
            const double t = base + s.t;
            if (t >= until && !out.empty())
            {
                break;
            }
            if (out.empty() || out.back().value != s.value)
            {
                out.push_back({t, s.value});
            }
        }
        if (!m_loops)
        {
            break;
        }
    }
    return out;
}

double
StepSchedule::Max(double until) const
{
    double m = -INFINITY;
    for (const Step& s : Unroll(until))
    {
        m = std::max(m, s.value);
    }
    return m;
}

double
StepSchedule::Min(double until) const
{
    double m = INFINITY;
    for (const Step& s : Unroll(until))
    {
        m = std::min(m, s.value);
    }
    return m;
}

StepSchedule
StepSchedule::WithOverrides(const std::vector<Override>& overrides, double until) const
{
    std::vector<double> cuts;
    for (const Step& s : Unroll(until))
    {
        cuts.push_back(s.t);
    }
    for (const Override& o : overrides)
    {
        for (double t : {o.t0, o.t1})
        {
            if (t >= 0 && t < until)
            {
                cuts.push_back(t);
            }
        }
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    std::vector<Step> steps;
    for (double t : cuts)
    {
        double v = ValueAt(t);
        for (const Override& o : overrides)
        {
            if (t >= o.t0 && t < o.t1)
            {
                v = o.value;
            }
        }
        if (steps.empty() || steps.back().value != v)
        {
            steps.push_back({t, v});
        }
    }
    const double period = std::max(until, steps.back().t + 1e-9);
    return StepSchedule(std::move(steps), period, false);
}

// ---------------------------------------------------------------------------------------
// Trace files

namespace
{
std::string
Trim(const std::string& s)
{
    std::size_t a = 0;
    std::size_t b = s.size();
    while (a < b && std::isspace(static_cast<unsigned char>(s[a])))
    {
        ++a;
    }
    while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1])))
    {
        --b;
    }
    return s.substr(a, b - a);
}

std::vector<std::string>
SplitCsv(const std::string& line)
{
    std::vector<std::string> out;
    std::string field;
    std::istringstream is(line);
    while (std::getline(is, field, ','))
    {
        out.push_back(Trim(field));
    }
    if (!line.empty() && line.back() == ',')
    {
        out.emplace_back();
    }
    return out;
}

bool
ParseNumber(const std::string& s, double& v)
{
    if (s.empty())
    {
        return false;
    }
    char* end = nullptr;
    v = std::strtod(s.c_str(), &end);
    return end && *end == '\0' && std::isfinite(v);
}

/// Days since 1970-01-01 of a civil (proleptic Gregorian) date.
int64_t
DaysFromCivil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

/// "2019.12.16_13.40.04" -> seconds since the epoch (no time zone: only differences matter).
bool
ParseStamp(const std::string& s, int64_t& seconds)
{
    int y, mo, d, h, mi, se;
    char tail;
    if (std::sscanf(s.c_str(), "%d.%d.%d_%d.%d.%d%c", &y, &mo, &d, &h, &mi, &se, &tail) != 6)
    {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
        se > 60)
    {
        return false;
    }
    seconds = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return true;
}

int
ColumnIndex(const std::vector<std::string>& header, const std::string& name)
{
    for (std::size_t i = 0; i < header.size(); ++i)
    {
        if (header[i] == name)
        {
            return static_cast<int>(i);
        }
    }
    return -1;
}

std::string
Join(const std::set<std::string>& s)
{
    std::string out;
    for (const auto& x : s)
    {
        out += (out.empty() ? "" : ", ") + x;
    }
    return out.empty() ? "none" : out;
}

std::string
FormatSeconds(double s)
{
    std::ostringstream os;
    os << s << "s";
    return os.str();
}
} // namespace

const std::set<std::string>&
KnownNetworkModes()
{
    static const std::set<std::string> modes = {"5G",   "LTE",  "HSPA+", "HSDPA",
                                                "HSUPA", "UMTS", "EDGE",  "GPRS"};
    return modes;
}

std::set<std::string>
ParseModes(const std::string& spec)
{
    std::set<std::string> out;
    const std::string s = Trim(spec);
    if (s.empty() || s == "all")
    {
        return out;
    }
    for (const std::string& raw : SplitCsv(s))
    {
        std::string canonical;
        for (const std::string& known : KnownNetworkModes())
        {
            if (known.size() == raw.size() &&
                std::equal(known.begin(), known.end(), raw.begin(), [](char a, char b) {
                    return std::toupper(static_cast<unsigned char>(a)) ==
                           std::toupper(static_cast<unsigned char>(b));
                }))
            {
                canonical = known;
            }
        }
        if (canonical.empty())
        {
            throw TraceError("unknown network mode '" + raw + "'; allowed: all, or a comma-separated list of " +
                             Join(KnownNetworkModes()));
        }
        out.insert(canonical);
    }
    return out;
}

StepSchedule
LoadCapacityTrace(const std::string& path, const TraceOptions& options, TraceInfo* infoOut)
{
    TraceInfo info;
    info.path = path;
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!ec && std::filesystem::is_directory(status))
    {
        throw TraceError("trace '" + path + "' is a directory (expected a CSV file)");
    }
    if (!ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    {
        throw TraceError("trace '" + path + "' is not a regular file (expected a CSV file)");
    }
    std::ifstream f(path);
    if (!f.is_open())
    {
        throw TraceError("cannot open trace file '" + path + "' (expected a readable CSV file)");
    }

    enum class Format
    {
        Unknown,
        Plain,
        Dataset
    } format = Format::Unknown;
    int timeCol = 0;
    int rateCol = 1;
    int modeCol = -1;
    std::map<double, std::pair<double, uint64_t>> samples; // time -> (sum of bit/s, count)

    auto fail = [&](uint64_t lineNo, const std::string& what) {
        throw TraceError("trace '" + path + "' line " + std::to_string(lineNo) + ": " + what);
    };

    // Bounds that keep the simulation's arithmetic finite (and reject unit mistakes).
    const double maxSeconds = 1e7;  // about 115 days
    const double maxMbps = 1e5;     // 100 Gb/s
    const std::size_t maxLine = 1 << 16;

    std::string line;
    uint64_t lineNo = 0;
    while (std::getline(f, line))
    {
        ++lineNo;
        if (line.size() > maxLine)
        {
            fail(lineNo, "line longer than 65536 characters: not a CSV trace");
        }
        if (!line.empty() && line.back() == '\r')
        {
            line.pop_back();
        }
        const std::string trimmed = Trim(line);
        if (trimmed.empty() || trimmed[0] == '#')
        {
            continue;
        }
        std::vector<std::string> fields = SplitCsv(trimmed);
        if (format == Format::Unknown)
        {
            double a, b;
            if (fields.size() >= 2 && ParseNumber(fields[0], a) && ParseNumber(fields[1], b))
            {
                format = Format::Plain; // no header: time_s,mbps
            }
            else
            {
                const int ts = ColumnIndex(fields, "Timestamp");
                const int dl = ColumnIndex(fields, "DL_bitrate");
                const int t = ColumnIndex(fields, "time_s");
                const int m = ColumnIndex(fields, "mbps");
                if (ts >= 0 && dl >= 0)
                {
                    format = Format::Dataset;
                    timeCol = ts;
                    rateCol = dl;
                    modeCol = ColumnIndex(fields, "NetworkMode");
                }
                else if (t >= 0 && m >= 0)
                {
                    format = Format::Plain;
                    timeCol = t;
                    rateCol = m;
                }
                else
                {
                    fail(lineNo, "unrecognised header; expected columns time_s,mbps or the 5G "
                                 "dataset's Timestamp,NetworkMode,DL_bitrate");
                }
                if (!options.modes.empty() && modeCol < 0)
                {
                    throw TraceError("modes=" + Join(options.modes) + " needs a NetworkMode column, which trace '" +
                                     path + "' does not have (expected modes=all)");
                }
                continue;
            }
            if (!options.modes.empty())
            {
                throw TraceError("modes=" + Join(options.modes) + " needs a NetworkMode column, which trace '" +
                                 path + "' does not have (expected modes=all)");
            }
        }

        ++info.rows;
        const int need = std::max({timeCol, rateCol, modeCol}) + 1;
        if (static_cast<int>(fields.size()) < need)
        {
            fail(lineNo, "expected at least " + std::to_string(need) + " columns, found " +
                             std::to_string(fields.size()));
        }
        double t = 0;
        double bps = 0;
        if (format == Format::Dataset)
        {
            int64_t stamp;
            if (!ParseStamp(fields[timeCol], stamp))
            {
                fail(lineNo, "bad Timestamp '" + fields[timeCol] + "'; expected YYYY.MM.DD_hh.mm.ss");
            }
            t = static_cast<double>(stamp);
            if (modeCol >= 0)
            {
                info.modesPresent.insert(fields[modeCol]);
                if (!options.modes.empty() && !options.modes.count(fields[modeCol]))
                {
                    ++info.rowsOtherMode;
                    continue;
                }
            }
            const std::string& r = fields[rateCol];
            if (r.empty() || r == "-")
            {
                ++info.rowsMissing;
                continue;
            }
            double kbps;
            if (!ParseNumber(r, kbps) || kbps < 0 || kbps > maxMbps * 1e3)
            {
                fail(lineNo, "bad DL_bitrate '" + r + "'; expected a number of kbit/s in [0, 1e8]");
            }
            bps = kbps * 1e3;
        }
        else
        {
            double mbps;
            if (!ParseNumber(fields[timeCol], t) || t < 0 || t > maxSeconds)
            {
                fail(lineNo, "bad time '" + fields[timeCol] + "'; expected seconds in [0, 1e7]");
            }
            if (!ParseNumber(fields[rateCol], mbps) || mbps < 0 || mbps > maxMbps)
            {
                fail(lineNo, "bad rate '" + fields[rateCol] + "'; expected Mb/s in [0, 100000]");
            }
            bps = mbps * 1e6;
        }
        auto& acc = samples[t];
        if (acc.second > 0)
        {
            ++info.duplicates;
        }
        acc.first += bps;
        acc.second += 1;
        ++info.rowsUsed;
    }

    if (format == Format::Unknown)
    {
        throw TraceError("trace '" + path + "' is empty (expected time_s,mbps rows or the 5G dataset's columns)");
    }
    info.format = format == Format::Dataset ? "5g-dataset" : "time_s,mbps";
    if (samples.empty())
    {
        if (!options.modes.empty())
        {
            throw TraceError("no rows of mode " + Join(options.modes) + " in trace '" + path +
                             "' (modes present: " + Join(info.modesPresent) + ")");
        }
        throw TraceError("trace '" + path + "' has no usable rows (expected rows with a rate)");
    }

    // Steps: each sample holds until the next one.
    std::vector<StepSchedule::Step> steps;
    const double origin = samples.begin()->first;
    double prev = -1;
    std::vector<double> spacing;
    for (const auto& [t, acc] : samples)
    {
        const double rel = t - origin;
        if (prev >= 0)
        {
            spacing.push_back(rel - prev);
            if (format == Format::Dataset && rel - prev > 1)
            {
                info.gapSeconds += static_cast<uint64_t>(std::llround(rel - prev - 1));
            }
        }
        double v = acc.first / acc.second;
        if (v < options.floorBps)
        {
            v = options.floorBps;
            ++info.floored;
        }
        steps.push_back({rel, v});
        prev = rel;
    }
    double last = 1.0;
    if (format == Format::Plain && !spacing.empty())
    {
        std::nth_element(spacing.begin(), spacing.begin() + spacing.size() / 2, spacing.end());
        last = spacing[spacing.size() / 2];
    }
    double period = steps.back().t + last;

    // Offset: start inside the trace.
    if (options.offsetS > 0)
    {
        if (options.offsetS >= period)
        {
            throw TraceError("trace_offset " + FormatSeconds(options.offsetS) + " is beyond the end of trace '" +
                             path + "' (" + FormatSeconds(period) + " long); must be below its length");
        }
        const StepSchedule whole(steps, period, false);
        std::vector<StepSchedule::Step> shifted{{0.0, whole.ValueAt(options.offsetS)}};
        for (const auto& s : steps)
        {
            if (s.t > options.offsetS)
            {
                shifted.push_back({s.t - options.offsetS, s.value});
            }
        }
        steps = std::move(shifted);
        period -= options.offsetS;
    }
    info.durationS = period;
    if (infoOut)
    {
        *infoOut = info;
    }
    return StepSchedule(std::move(steps), period, true);
}

// ---------------------------------------------------------------------------------------
// Generator

BlockageModel
BlockageModel::Profile(const std::string& name)
{
    BlockageModel m;
    if (name == "midband")
    {
        // FR1 n78 (3.5 GHz, 100 MHz TDD), one UE's share of a loaded cell: good and
        // shadowed states of seconds, mild fading. Mean about 119 Mb/s, in the range of the
        // measured Irish 5G traces (50-120 Mb/s mean, peaks near 330 Mb/s).
        m.losBps = 150e6;
        m.nlosBps = 40e6;
        m.losDwellS = 10;
        m.nlosDwellS = 4;
        m.sigma = 0.2;
        m.intervalS = 0.5;
    }
    else if (name == "mmwave")
    {
        // FR2 n257/n261 (28 GHz, 400 MHz): high capacity in line of sight, deep short drops
        // when a body or vehicle blocks the beam (blockages last about a second).
        m.losBps = 400e6;
        m.nlosBps = 25e6;
        m.losDwellS = 4;
        m.nlosDwellS = 1;
        m.sigma = 0.3;
        m.intervalS = 0.1;
    }
    else
    {
        throw TraceError("unknown 5G profile '" + name + "'; allowed: midband, mmwave");
    }
    return m;
}

StepSchedule
BlockageModel::Generate(double durationS, uint64_t seed, double* losShare) const
{
    PortableRng rng(seed, 0x5147);
    bool los = rng.Uniform() < losDwellS / (losDwellS + nlosDwellS);
    double nextSwitch = rng.Exponential(los ? losDwellS : nlosDwellS);
    std::vector<StepSchedule::Step> steps;
    double t = 0;
    double losTime = 0;
    while (t < durationS)
    {
        const double end = std::min(t + intervalS, nextSwitch);
        const double factor = std::exp(sigma * rng.Normal() - sigma * sigma / 2);
        steps.push_back({t, std::max(floorBps, (los ? losBps : nlosBps) * factor)});
        if (los)
        {
            losTime += std::min(end, durationS) - t;
        }
        if (end >= nextSwitch)
        {
            los = !los;
            nextSwitch = end + rng.Exponential(los ? losDwellS : nlosDwellS);
        }
        t = end;
    }
    if (losShare)
    {
        *losShare = durationS > 0 ? losTime / durationS : 0;
    }
    return StepSchedule(std::move(steps), std::max(durationS, t), false);
}

// ---------------------------------------------------------------------------------------
// PortableRng

namespace
{
uint64_t
SplitMix(uint64_t& x)
{
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t
Rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}
} // namespace

PortableRng::PortableRng(uint64_t seed, uint64_t stream)
{
    uint64_t x = seed * 0x100000001b3ULL ^ stream;
    for (auto& s : m_state)
    {
        s = SplitMix(x);
    }
}

uint64_t
PortableRng::Next()
{
    const uint64_t result = Rotl(m_state[1] * 5, 7) * 9;
    const uint64_t t = m_state[1] << 17;
    m_state[2] ^= m_state[0];
    m_state[3] ^= m_state[1];
    m_state[1] ^= m_state[2];
    m_state[0] ^= m_state[3];
    m_state[2] ^= t;
    m_state[3] = Rotl(m_state[3], 45);
    return result;
}

double
PortableRng::Uniform()
{
    return static_cast<double>(Next() >> 11) * 0x1.0p-53;
}

double
PortableRng::Uniform(double lo, double hi)
{
    return lo + (hi - lo) * Uniform();
}

double
PortableRng::Exponential(double mean)
{
    return -mean * std::log1p(-Uniform());
}

double
PortableRng::Normal()
{
    const double u1 = 1.0 - Uniform(); // (0, 1]
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

} // namespace aqmllm
