/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_SCENARIO_PARAMS_H
#define AQM_LLM_SCENARIO_PARAMS_H

#include "ns3/aqm-json.h"
#include "ns3/data-rate.h"
#include "ns3/nstime.h"
#include "ns3/queue-size.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace aqmllm
{

/**
 * \brief The scenario parameters a program accepts: declared once, parsed from
 * `--name=value`, validated, and described as JSON (`--describe`) so that the Python
 * runner validates a user's input against the same declaration before starting a run.
 */
class ParamSet
{
  public:
    /// Kinds of values, as named in the `--describe` JSON.
    enum class Kind
    {
        Int,
        Double,
        Bool,
        String,
        Time,     //!< ns-3 time string: "30s", "500ms"
        Rate,     //!< ns-3 data rate: "100Mbps"
        Size,     //!< ns-3 queue size: "1000p", "1500000B"
        Choice,   //!< one of a fixed list of strings
    };

    /// One declared parameter.
    struct Spec
    {
        std::string name;
        Kind kind;
        std::string defaultValue;
        std::string help;
        std::optional<double> min; //!< numeric lower bound (Int, Double; seconds for Time; bit/s for Rate)
        std::optional<double> max; //!< numeric upper bound
        std::vector<std::string> choices;
        /// Queue discs the parameter acts on; set to anything but its default with another queue
        /// disc, a run is refused (CheckQdiscScope). Empty: every queue disc.
        std::vector<std::string> qdiscs;
    };

    explicit ParamSet(std::string program);

    ParamSet& Int(const std::string& name, long def, const std::string& help,
                  std::optional<double> min = {}, std::optional<double> max = {});
    ParamSet& Double(const std::string& name, double def, const std::string& help,
                     std::optional<double> min = {}, std::optional<double> max = {});
    ParamSet& Bool(const std::string& name, bool def, const std::string& help);
    ParamSet& String(const std::string& name, const std::string& def, const std::string& help);
    ParamSet& Time(const std::string& name, const std::string& def, const std::string& help,
                   std::optional<double> minSeconds = {}, std::optional<double> maxSeconds = {});
    ParamSet& Rate(const std::string& name, const std::string& def, const std::string& help,
                   std::optional<double> minBps = {}, std::optional<double> maxBps = {});
    ParamSet& Size(const std::string& name, const std::string& def, const std::string& help);
    ParamSet& Choice(const std::string& name, const std::string& def,
                     const std::vector<std::string>& choices, const std::string& help);

    /**
     * \brief Parse `--name=value` arguments. `--describe` prints the declaration as JSON
     * and exits 0; any bad input prints one line naming it and exits 2.
     */
    void Parse(int argc, char* argv[]);

    /// \brief Change a declared parameter's default (a scenario's own choice), before Parse.
    ParamSet& SetDefault(const std::string& name, const std::string& value);

    /**
     * \brief Declare that parameter \p name acts on the queue discs \p qdiscs only (listed in
     * `--describe` as "qdiscs", so the Python runner refuses the same runs before starting one).
     */
    ParamSet& AppliesTo(const std::string& name, const std::vector<std::string>& qdiscs);

    /**
     * \brief Fail (exit 2, one line) if a parameter declared with AppliesTo is set to anything
     * but its default while the queue disc under test, \p qdisc, is not one it acts on.
     */
    void CheckQdiscScope(const std::string& qdisc) const;

    long GetInt(const std::string& name) const;
    double GetDouble(const std::string& name) const;
    bool GetBool(const std::string& name) const;
    std::string GetString(const std::string& name) const;
    ns3::Time GetTime(const std::string& name) const;
    ns3::DataRate GetRate(const std::string& name) const;
    ns3::QueueSize GetSize(const std::string& name) const;

    /**
     * \brief Set again every ns-3 attribute default given as `--ns3::TypeName::Attribute=value`
     * (ns-3's own CommandLine form; Parse checks and sets each), after a scenario's own
     * Config::SetDefault calls, so that the user's value wins for objects created from then on.
     */
    void ApplyNs3Defaults() const;

    /// \brief The declaration as a JSON array.
    std::string DescribeJson() const;
    /// \brief The parsed values (every parameter, defaults included) as a JSON object.
    std::string ValuesJson() const;

    /// \brief Exit(2) with one line "PROGRAM: MESSAGE".
    [[noreturn]] void Fail(const std::string& message) const;

  private:
    ParamSet& Add(Spec spec);
    const Spec& Find(const std::string& name) const;
    Spec& Find(const std::string& name);
    /// \return an error message, empty if \p value is valid for \p spec
    std::string Check(const Spec& spec, const std::string& value) const;
    /// \return whether the parsed value of \p spec is its default (numbers compared as numbers)
    bool IsDefault(const Spec& spec) const;

    std::string m_program;
    std::vector<Spec> m_specs;
    std::map<std::string, std::string> m_values;
    std::vector<std::pair<std::string, std::string>> m_ns3Defaults; //!< `--ns3::...=value`
};

using ns3::JsonNumber; // the module's JSON helpers (ns3/aqm-json.h)
using ns3::JsonString;

} // namespace aqmllm

#endif
