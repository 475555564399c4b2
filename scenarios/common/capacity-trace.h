/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_SCENARIO_CAPACITY_TRACE_H
#define AQM_LLM_SCENARIO_CAPACITY_TRACE_H

#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace aqmllm
{

/**
 * \brief A piecewise-constant function of simulated time (a link's capacity in bit/s, a
 * path's base RTT in seconds), optionally repeating with a period.
 *
 * Step i holds value[i] from time[i] until time[i+1] (the last step until the period).
 * Times are seconds from the start of the run; the first step starts at 0.
 */
class StepSchedule
{
  public:
    struct Step
    {
        double t;     //!< start of the step, seconds
        double value; //!< value from t on
    };

    StepSchedule() = default;
    /// \brief A constant function.
    explicit StepSchedule(double value);
    /**
     * \param steps sorted by time, steps[0].t == 0
     * \param period length of one repetition (> last step's time); the function repeats
     *        with this period when \p loops, else the last value holds forever
     */
    StepSchedule(std::vector<Step> steps, double period, bool loops);

    double ValueAt(double t) const;
    /// \brief Integral of the function over [t0, t1] (bits, for a capacity in bit/s).
    double Integral(double t0, double t1) const;
    /// \brief Time-average over [t0, t1].
    double Mean(double t0, double t1) const;
    /// \brief Largest and smallest value reached in [0, until].
    double Max(double until) const;
    double Min(double until) const;
    /// \brief The change points in [0, until), repetitions unrolled, equal neighbours merged.
    std::vector<Step> Unroll(double until) const;
    /**
     * \brief The same function up to \p until with \p value forced inside each of the
     * given intervals (outages, handover gaps); not looping.
     */
    struct Override
    {
        double t0, t1, value;
    };
    StepSchedule WithOverrides(const std::vector<Override>& overrides, double until) const;

    const std::vector<Step>& Steps() const { return m_steps; }
    double Period() const { return m_period; }
    bool Loops() const { return m_loops; }

  private:
    double IntegralFromZero(double t) const;

    std::vector<Step> m_steps{{0.0, 0.0}};
    std::vector<double> m_cumulative{0.0}; //!< integral from 0 to m_steps[i].t
    double m_period{1.0};
    double m_periodIntegral{0.0};
    bool m_loops{false};
};

/// \brief Bad trace file or options; the message says what and where (one line).
class TraceError : public std::runtime_error
{
  public:
    using std::runtime_error::runtime_error;
};

/// \brief How a capacity trace file is read.
struct TraceOptions
{
    double floorBps{1e6};         //!< seconds below this (zero-rate seconds) are raised to it
    std::set<std::string> modes;  //!< keep only rows of these NetworkModes (empty: all rows)
    double offsetS{0};            //!< start this many seconds into the trace
};

/// \brief What the parser found (reported in the metrics).
struct TraceInfo
{
    std::string path;
    std::string format;        //!< "5g-dataset" or "time_s,mbps"
    uint64_t rows{0};          //!< data rows in the file
    uint64_t rowsUsed{0};      //!< rows kept (mode filter, valid rate)
    uint64_t rowsMissing{0};   //!< rows with no rate ('-' or empty), skipped
    uint64_t rowsOtherMode{0}; //!< rows dropped by the mode filter
    uint64_t duplicates{0};    //!< rows merged into an earlier row with the same time
    uint64_t gapSeconds{0};    //!< seconds with no row (5G dataset; the last value holds)
    uint64_t floored{0};       //!< samples raised to the floor
    double durationS{0};       //!< length of the trace after the offset (its loop period)
    std::set<std::string> modesPresent;
};

/**
 * \brief Read a capacity trace (CSV) into a StepSchedule of bit/s that repeats when the
 * run outlasts it. Two formats:
 *
 * - `time_s,mbps`: a time in seconds and a rate in Mb/s per line, header optional ('#'
 *   starts a comment); each sample holds until the next one; times are shifted so the
 *   first is 0; the last sample lasts the median sample spacing.
 * - the 5G dataset of Raca et al. (MMSys 2020): header with `Timestamp`
 *   (YYYY.MM.DD_hh.mm.ss), `NetworkMode` and `DL_bitrate` (kbit/s); one row per second.
 *
 * Rows with the same time are averaged; a missing second (or a row without a rate, '-')
 * holds the previous value; rows of other network modes are removed first when
 * \c options.modes is set (their seconds become gaps); values below \c floorBps are raised
 * to it; \c offsetS drops the start.
 *
 * \throws TraceError with a one-line message on bad input.
 */
StepSchedule LoadCapacityTrace(const std::string& path, const TraceOptions& options, TraceInfo* info);

/// \brief The network modes the 5G dataset uses (for validating a `modes` option).
const std::set<std::string>& KnownNetworkModes();

/// \brief Parse "5G,LTE" (or "all": empty set); throws TraceError on an unknown mode.
std::set<std::string> ParseModes(const std::string& spec);

/**
 * \brief Seeded two-state (LOS / NLOS, i.e. blockage) Markov model of a 5G downlink's
 * capacity.
 *
 * The state dwells an exponential time (mean \c losDwellS or \c nlosDwellS) and then
 * switches; the first state is drawn from the stationary distribution. Every \c intervalS
 * (and at each switch) the capacity is redrawn as the state's mean times a log-normal
 * factor of mean 1 and log-standard deviation \c sigma, then floored at \c floorBps.
 */
struct BlockageModel
{
    double losBps{150e6};
    double nlosBps{40e6};
    double losDwellS{10};
    double nlosDwellS{4};
    double sigma{0.2};
    double intervalS{0.5};
    double floorBps{1e6};

    /// \brief Profile defaults: "midband" (3.5 GHz, 100 MHz) or "mmwave" (28 GHz, 400 MHz).
    static BlockageModel Profile(const std::string& name);

    /// \brief The capacity over [0, durationS] for \p seed (not looping), and the LOS
    /// share of time in \p losShare if not null.
    StepSchedule Generate(double durationS, uint64_t seed, double* losShare = nullptr) const;
};

/**
 * \brief Small self-contained random source (xoshiro256** seeded through splitmix64, with
 * portable transforms), so that a capacity series depends on the seed only: not on how
 * many ns-3 random streams the queue disc or the traffic used, nor on the C++ library.
 */
class PortableRng
{
  public:
    PortableRng(uint64_t seed, uint64_t stream);
    double Uniform();                     //!< in [0, 1)
    double Uniform(double lo, double hi); //!< in [lo, hi)
    double Exponential(double mean);
    double Normal(); //!< standard normal (Box-Muller)

  private:
    uint64_t Next();
    uint64_t m_state[4];
};

} // namespace aqmllm

#endif
