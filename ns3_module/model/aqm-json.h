/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_JSON_H
#define AQM_JSON_H

#include <cmath>
#include <cstdio>
#include <string>

namespace ns3
{

/**
 * \ingroup aqm-llm
 * \brief A JSON string literal for \p s, with quotes, backslashes and control characters escaped.
 *
 * The module writes small JSON documents (metrics, record headers, reports) by hand; these two
 * helpers are the only escaping it needs.
 */
inline std::string
JsonString(const std::string& s)
{
    std::string out = "\"";
    for (char c : s)
    {
        if (c == '"' || c == '\\')
        {
            out += '\\';
            out += c;
        }
        else if (c == '\n')
        {
            out += "\\n";
        }
        else if (static_cast<unsigned char>(c) < 0x20)
        {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out += buf;
        }
        else
        {
            out += c;
        }
    }
    return out + "\"";
}

/**
 * \ingroup aqm-llm
 * \brief A JSON number for \p v (10 significant digits), or null if it is not finite.
 */
inline std::string
JsonNumber(double v)
{
    if (!std::isfinite(v))
    {
        return "null";
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.10g", v);
    return buf;
}

} // namespace ns3

#endif /* AQM_JSON_H */
