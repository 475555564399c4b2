/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "params.h"

#include "ns3/config.h"
#include "ns3/string.h"
#include "ns3/type-id.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <regex>
#include <sstream>
#include <utility>

namespace aqmllm
{

namespace
{
const char*
KindName(ParamSet::Kind kind)
{
    switch (kind)
    {
    case ParamSet::Kind::Int:
        return "int";
    case ParamSet::Kind::Double:
        return "float";
    case ParamSet::Kind::Bool:
        return "bool";
    case ParamSet::Kind::String:
        return "string";
    case ParamSet::Kind::Time:
        return "time";
    case ParamSet::Kind::Rate:
        return "rate";
    case ParamSet::Kind::Size:
        return "size";
    case ParamSet::Kind::Choice:
        return "choice";
    }
    return "?";
}

/// A number followed by a unit of \p scale, in the unit's base (e.g. seconds), or nullopt.
std::optional<double>
ParseWithUnit(const std::string& v, const std::regex& re, const std::map<std::string, double>& scale)
{
    std::smatch m;
    if (!std::regex_match(v, m, re))
    {
        return std::nullopt;
    }
    return std::stod(m[1]) * scale.at(m[2]);
}

/// Seconds in an ns-3 time string ("30s", "500ms", "1.5min" ...), or nullopt.
std::optional<double>
ParseSeconds(const std::string& v)
{
    static const std::regex re(R"(^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|ms|us|ns|min|h)\s*$)");
    static const std::map<std::string, double> scale = {
        {"s", 1.0}, {"ms", 1e-3}, {"us", 1e-6}, {"ns", 1e-9}, {"min", 60.0}, {"h", 3600.0}};
    return ParseWithUnit(v, re, scale);
}

/// Bits per second in a data-rate string ("100Mbps", "1Gbps", "500kbps"), or nullopt.
std::optional<double>
ParseBps(const std::string& v)
{
    static const std::regex re(R"(^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(bps|kbps|Kbps|Mbps|Gbps)\s*$)");
    static const std::map<std::string, double> scale = {
        {"bps", 1.0}, {"kbps", 1e3}, {"Kbps", 1e3}, {"Mbps", 1e6}, {"Gbps", 1e9}};
    return ParseWithUnit(v, re, scale);
}

bool
ParseBool(const std::string& v, bool& out)
{
    if (v == "true" || v == "1" || v == "yes" || v == "on")
    {
        out = true;
        return true;
    }
    if (v == "false" || v == "0" || v == "no" || v == "off")
    {
        out = false;
        return true;
    }
    return false;
}

std::string
FormatBound(double x)
{
    std::ostringstream os;
    os << x;
    return os.str();
}
} // namespace



ParamSet::ParamSet(std::string program)
    : m_program(std::move(program))
{
}

ParamSet&
ParamSet::Add(Spec spec)
{
    m_values[spec.name] = spec.defaultValue;
    m_specs.push_back(std::move(spec));
    return *this;
}

ParamSet&
ParamSet::Int(const std::string& name, long def, const std::string& help,
              std::optional<double> min, std::optional<double> max)
{
    return Add({name, Kind::Int, std::to_string(def), help, min, max, {}});
}

ParamSet&
ParamSet::Double(const std::string& name, double def, const std::string& help,
                 std::optional<double> min, std::optional<double> max)
{
    return Add({name, Kind::Double, JsonNumber(def), help, min, max, {}});
}

ParamSet&
ParamSet::Bool(const std::string& name, bool def, const std::string& help)
{
    return Add({name, Kind::Bool, def ? "true" : "false", help, {}, {}, {}});
}

ParamSet&
ParamSet::String(const std::string& name, const std::string& def, const std::string& help)
{
    return Add({name, Kind::String, def, help, {}, {}, {}});
}

ParamSet&
ParamSet::Time(const std::string& name, const std::string& def, const std::string& help,
               std::optional<double> minSeconds, std::optional<double> maxSeconds)
{
    return Add({name, Kind::Time, def, help, minSeconds, maxSeconds, {}});
}

ParamSet&
ParamSet::Rate(const std::string& name, const std::string& def, const std::string& help,
               std::optional<double> minBps, std::optional<double> maxBps)
{
    return Add({name, Kind::Rate, def, help, minBps, maxBps, {}});
}

ParamSet&
ParamSet::Size(const std::string& name, const std::string& def, const std::string& help)
{
    return Add({name, Kind::Size, def, help, {}, {}, {}});
}

ParamSet&
ParamSet::Choice(const std::string& name, const std::string& def,
                 const std::vector<std::string>& choices, const std::string& help)
{
    return Add({name, Kind::Choice, def, help, {}, {}, choices});
}

const ParamSet::Spec&
ParamSet::Find(const std::string& name) const
{
    for (const auto& s : m_specs)
    {
        if (s.name == name)
        {
            return s;
        }
    }
    std::string allowed;
    for (const auto& s : m_specs)
    {
        allowed += (allowed.empty() ? "" : ", ") + s.name;
    }
    Fail("unknown parameter '" + name + "'; allowed: " + allowed);
}

ParamSet::Spec&
ParamSet::Find(const std::string& name)
{
    // Declarations (SetDefault, AppliesTo) change a spec in place; the lookup and its error stay one.
    return const_cast<Spec&>(std::as_const(*this).Find(name));
}

std::string
ParamSet::Check(const Spec& spec, const std::string& value) const
{
    std::optional<double> x;
    std::string what;
    switch (spec.kind)
    {
    case Kind::Int: {
        static const std::regex re(R"(^[-+]?[0-9]+$)");
        if (!std::regex_match(value, re))
        {
            return "expected an integer";
        }
        x = std::stod(value);
        break;
    }
    case Kind::Double: {
        char* end = nullptr;
        double d = std::strtod(value.c_str(), &end);
        if (value.empty() || *end != '\0' || !std::isfinite(d))
        {
            return "expected a finite number";
        }
        x = d;
        break;
    }
    case Kind::Bool: {
        bool b;
        if (!ParseBool(value, b))
        {
            return "expected true or false";
        }
        break;
    }
    case Kind::String:
        break;
    case Kind::Time:
        x = ParseSeconds(value);
        if (!x)
        {
            return "expected a time such as 30s or 500ms";
        }
        what = " s";
        break;
    case Kind::Rate:
        x = ParseBps(value);
        if (!x)
        {
            return "expected a rate such as 100Mbps";
        }
        what = " bit/s";
        break;
    case Kind::Size: {
        // Digits only (no exponent), bounded before conversion: ns-3 queue sizes are 32-bit.
        static const std::regex re(R"(^[0-9]{1,12}(p|B)$)");
        const uint64_t maxPackets = 10000000;   // 1e7 packets
        const uint64_t maxBytes = 4000000000ULL; // below 2^32
        const uint64_t n =
            std::regex_match(value, re) ? std::stoull(value.substr(0, value.size() - 1)) : 0;
        if (n == 0)
        {
            return "expected a positive size such as 1000p or 1500000B (at most 10000000p or "
                   "4000000000B)";
        }
        if (n > (value.back() == 'p' ? maxPackets : maxBytes))
        {
            return "too large: at most 10000000p or 4000000000B";
        }
        // A byte limit below one full-size packet makes queue discs refuse their config.
        if (value.back() == 'B' && n < 1500)
        {
            return "a byte limit must hold one 1500-byte packet (>= 1500B)";
        }
        break;
    }
    case Kind::Choice: {
        for (const auto& c : spec.choices)
        {
            if (c == value)
            {
                return "";
            }
        }
        std::string allowed;
        for (const auto& c : spec.choices)
        {
            allowed += (allowed.empty() ? "" : ", ") + c;
        }
        return "allowed: " + allowed;
    }
    }
    if (x && spec.min && *x < *spec.min)
    {
        return "must be >= " + FormatBound(*spec.min) + what;
    }
    if (x && spec.max && *x > *spec.max)
    {
        return "must be <= " + FormatBound(*spec.max) + what;
    }
    return "";
}

void
ParamSet::Fail(const std::string& message) const
{
    std::cerr << m_program << ": " << message << std::endl;
    std::exit(2);
}

namespace
{
/// False if \p name is a numeric or time ns-3 attribute and \p value is not a number (or a
/// time: a number with an optional ns-3 unit), or an enum attribute and \p value is none of its
/// names: ns-3 aborts on those instead of reporting them.
/// True otherwise (Config::SetDefaultFailSafe decides).
bool
Ns3ValueFits(const std::string& name, const std::string& value)
{
    const std::size_t sep = name.rfind("::");
    ns3::TypeId tid;
    ns3::TypeId::AttributeInformation info;
    if (sep == std::string::npos || !ns3::TypeId::LookupByNameFailSafe(name.substr(0, sep), &tid) ||
        !tid.LookupAttributeByName(name.substr(sep + 2), &info))
    {
        return true; // unknown: SetDefaultFailSafe reports it
    }
    const std::string type = info.checker->GetValueTypeName();
    if (type == "ns3::TimeValue")
    {
        static const std::regex time(
            R"(^\s*[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?\s*(y|d|h|min|s|ms|us|ns|ps|fs)?\s*$)");
        return std::regex_match(value, time);
    }
    if (type.rfind("ns3::EnumValue<", 0) == 0)
    {
        // An enum checker lists its names as "A|B|C"; ns-3 asserts on any other.
        const std::string names = "|" + info.checker->GetUnderlyingTypeInformation() + "|";
        return !value.empty() && value.find('|') == std::string::npos &&
               names.find("|" + value + "|") != std::string::npos;
    }
    if (type != "ns3::UintegerValue" && type != "ns3::IntegerValue" && type != "ns3::DoubleValue")
    {
        return true;
    }
    char* end = nullptr;
    const double x = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !std::isfinite(x))
    {
        return false;
    }
    return type == "ns3::DoubleValue" || (x == std::floor(x) && (type != "ns3::UintegerValue" || x >= 0));
}
} // namespace

void
ParamSet::ApplyNs3Defaults() const
{
    for (const auto& [name, value] : m_ns3Defaults)
    {
        ns3::Config::SetDefault(name, ns3::StringValue(value));
    }
}

void
ParamSet::Parse(int argc, char* argv[])
{
    for (int i = 1; i < argc; ++i)
    {
        std::string arg = argv[i];
        if (arg == "--describe")
        {
            std::cout << DescribeJson() << std::endl;
            std::exit(0);
        }
        if (arg == "--help" || arg == "-h")
        {
            std::cout << "usage: " << m_program << " [--name=value ...] [--describe]\n";
            for (const auto& s : m_specs)
            {
                std::cout << "  --" << s.name << "=" << s.defaultValue << "  (" << KindName(s.kind)
                          << ") " << s.help << "\n";
            }
            std::exit(0);
        }
        if (arg.rfind("--", 0) != 0 || arg.find('=') == std::string::npos)
        {
            Fail("bad argument '" + arg + "'; expected --name=value");
        }
        const std::string name = arg.substr(2, arg.find('=') - 2);
        const std::string value = arg.substr(arg.find('=') + 1);
        if (name.rfind("ns3::", 0) == 0)
        {
            if (!Ns3ValueFits(name, value) ||
                !ns3::Config::SetDefaultFailSafe(name, ns3::StringValue(value)))
            {
                Fail("bad ns-3 attribute '" + name + "=" + value +
                     "': no such TypeName::Attribute, or the value does not fit it");
            }
            m_ns3Defaults.emplace_back(name, value);
            continue;
        }
        const Spec& spec = Find(name);
        const std::string err = Check(spec, value);
        if (!err.empty())
        {
            Fail("bad value '" + value + "' for " + name + ": " + err);
        }
        m_values[name] = value;
    }
}

ParamSet&
ParamSet::SetDefault(const std::string& name, const std::string& value)
{
    Find(name).defaultValue = value;
    m_values[name] = value;
    return *this;
}

ParamSet&
ParamSet::AppliesTo(const std::string& name, const std::vector<std::string>& qdiscs)
{
    Find(name).qdiscs = qdiscs;
    return *this;
}

bool
ParamSet::IsDefault(const Spec& spec) const
{
    switch (spec.kind)
    {
    case Kind::Int: // by number: "-01" is -1
        return GetInt(spec.name) == std::stol(spec.defaultValue);
    case Kind::Double:
        return GetDouble(spec.name) == std::stod(spec.defaultValue);
    default:
        return GetString(spec.name) == spec.defaultValue;
    }
}

void
ParamSet::CheckQdiscScope(const std::string& qdisc) const
{
    for (const auto& s : m_specs)
    {
        if (s.qdiscs.empty() || IsDefault(s) ||
            std::find(s.qdiscs.begin(), s.qdiscs.end(), qdisc) != s.qdiscs.end())
        {
            continue;
        }
        std::string names;
        for (std::size_t i = 0; i < s.qdiscs.size(); ++i)
        {
            names += (i == 0 ? "" : i + 1 == s.qdiscs.size() ? " and " : ", ") + s.qdiscs[i];
        }
        Fail("bad value '" + GetString(s.name) + "' for " + s.name + ": it applies to " + names +
             ", not to " + qdisc + " (default " + s.defaultValue + ")");
    }
}

long
ParamSet::GetInt(const std::string& name) const
{
    Find(name);
    return std::stol(m_values.at(name));
}

double
ParamSet::GetDouble(const std::string& name) const
{
    Find(name);
    return std::stod(m_values.at(name));
}

bool
ParamSet::GetBool(const std::string& name) const
{
    Find(name);
    bool b = false;
    ParseBool(m_values.at(name), b);
    return b;
}

std::string
ParamSet::GetString(const std::string& name) const
{
    Find(name);
    return m_values.at(name);
}

ns3::Time
ParamSet::GetTime(const std::string& name) const
{
    Find(name);
    return ns3::Seconds(*ParseSeconds(m_values.at(name)));
}

ns3::DataRate
ParamSet::GetRate(const std::string& name) const
{
    Find(name);
    return ns3::DataRate(static_cast<uint64_t>(std::llround(*ParseBps(m_values.at(name)))));
}

ns3::QueueSize
ParamSet::GetSize(const std::string& name) const
{
    Find(name);
    return ns3::QueueSize(m_values.at(name));
}

std::string
ParamSet::DescribeJson() const
{
    std::ostringstream os;
    os << "{\"program\": " << JsonString(m_program) << ", \"params\": [";
    bool first = true;
    for (const auto& s : m_specs)
    {
        os << (first ? "" : ", ") << "{\"name\": " << JsonString(s.name)
           << ", \"kind\": " << JsonString(KindName(s.kind))
           << ", \"default\": " << JsonString(s.defaultValue) << ", \"help\": " << JsonString(s.help);
        if (s.min)
        {
            os << ", \"min\": " << JsonNumber(*s.min);
        }
        if (s.max)
        {
            os << ", \"max\": " << JsonNumber(*s.max);
        }
        for (const auto& [key, list] : {std::pair{"choices", &s.choices}, std::pair{"qdiscs", &s.qdiscs}})
        {
            if (list->empty())
            {
                continue;
            }
            os << ", " << JsonString(key) << ": [";
            for (std::size_t i = 0; i < list->size(); ++i)
            {
                os << (i ? ", " : "") << JsonString((*list)[i]);
            }
            os << "]";
        }
        os << "}";
        first = false;
    }
    os << "]}";
    return os.str();
}

std::string
ParamSet::ValuesJson() const
{
    std::ostringstream os;
    os << "{";
    bool first = true;
    for (const auto& s : m_specs)
    {
        os << (first ? "" : ", ") << JsonString(s.name) << ": ";
        const std::string& v = m_values.at(s.name);
        switch (s.kind)
        {
        case Kind::Int:
        case Kind::Double:
            os << v;
            break;
        case Kind::Bool:
            os << (GetBool(s.name) ? "true" : "false");
            break;
        default:
            os << JsonString(v);
        }
        first = false;
    }
    for (const auto& [name, value] : m_ns3Defaults)
    {
        os << (first ? "" : ", ") << JsonString(name) << ": " << JsonString(value);
        first = false;
    }
    os << "}";
    return os.str();
}

} // namespace aqmllm
