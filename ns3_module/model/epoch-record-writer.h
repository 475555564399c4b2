/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_EPOCH_RECORD_WRITER_H
#define AQM_LLM_EPOCH_RECORD_WRITER_H

#include "agent-messages.h"

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace ns3
{

/**
 * \ingroup aqm-llm
 * \brief The record file of L4sLlmQueueDisc's Record mode: one fixed-size record per decision
 * epoch (the request, the agent's reply, every teacher's reply), the experience pool that
 * training reads.
 *
 * Format (little-endian): bytes 0..7 "AQMLLMRC"; uint32 format version (1); uint32 H = offset
 * of the first record (a multiple of 64); a UTF-8 JSON object describing the layout, padded
 * with spaces up to H; then records of sizeof(Header) + sizeof(Request) + (1 + T) *
 * sizeof(Reply) bytes (docs/record-format.md). A write that fails aborts the run: a pool with
 * a hole would silently mislead training.
 */
class EpochRecordWriter
{
  public:
    /// Fixed 64-byte header of each record.
    struct Header
    {
        uint64_t epoch;          //!< epoch index (= the request's header.epoch)
        int64_t simTimeNs;       //!< simulation time of the epoch, ns
        int32_t actor;           //!< who decided: -2 fallback, -1 agent, >= 0 teacher index
        uint32_t agentOutcome;   //!< AgentClient::Outcome
        uint32_t teacherCount;   //!< T
        uint32_t flags;          //!< bit 0: fallback counted; bit 1: agent reply present;
                                 //!< bit 2: explored (the agent-reply slot holds the actions
                                 //!< applied: the acting teacher's, epsilon-randomised)
        double agentLatencyS;    //!< wall time of the agent call, s (0: none; not reproducible)
        int64_t effectiveTimeNs; //!< when the decision takes effect, ns
        uint64_t reserved[2];    //!< zero
    };

    /// What the file header says about the run.
    struct RunInfo
    {
        std::vector<std::string> teachers;     //!< teacher names, in reply order
        std::string acting;                    //!< "agent" or "teacher:NAME"
        int32_t actingTeacherIndex{-1};        //!< index of the acting teacher (-1: agent)
        double decisionIntervalS{0};           //!< epoch length, s
        double decisionDelayS{0};              //!< DecisionDelay, s
        uint32_t batchSize{0};                 //!< K
        bool packetUnit{true};                 //!< MaxSize in packets (else bytes)
        uint64_t maxSize{0};                   //!< MaxSize's value
        std::vector<std::string> outcomeNames; //!< agent outcome names by code
    };

    /**
     * \brief Create (truncate) \p path and write the file header.
     * \param path the record file
     * \param info the run's facts
     */
    void Open(const std::string& path, const RunInfo& info);

    /// \return whether a file is open
    bool IsOpen() const;

    /**
     * \brief Append one record.
     * \param header the record header
     * \param request the request as the channel carried it
     * \param agentReply the agent's reply (null: zeros)
     * \param teacherReplies every teacher's reply, in the header's order
     */
    void Write(const Header& header,
               const agent::Request& request,
               const agent::Reply* agentReply,
               const std::vector<agent::Reply>& teacherReplies);

    /// Flush and close.
    void Close();

  private:
    std::string m_path;                      //!< the record file
    std::size_t m_teachers{0};               //!< T, the replies each record holds
    std::unique_ptr<std::ofstream> m_file;   //!< open record file
    std::vector<char> m_buffer;              //!< one record
};

} // namespace ns3

#endif /* AQM_LLM_EPOCH_RECORD_WRITER_H */
