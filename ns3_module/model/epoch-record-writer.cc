/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "epoch-record-writer.h"

#include "aqm-json.h"

#include "ns3/abort.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace ns3
{

static_assert(sizeof(EpochRecordWriter::Header) == 64);
static_assert(offsetof(EpochRecordWriter::Header, agentLatencyS) == 32);
static_assert(offsetof(EpochRecordWriter::Header, effectiveTimeNs) == 40);

namespace
{

constexpr char kRecordMagic[8] = {'A', 'Q', 'M', 'L', 'L', 'M', 'R', 'C'};
constexpr uint32_t kRecordVersion = 1;

/// \return a JSON array of \p n names
template <typename Names>
std::string
JsonNames(const Names& names, std::size_t n)
{
    std::string out = "[";
    for (std::size_t i = 0; i < n; ++i)
    {
        out += (i ? ", " : "") + JsonString(names[i]);
    }
    return out + "]";
}

} // namespace

void
EpochRecordWriter::Open(const std::string& path, const RunInfo& info)
{
    m_path = path;
    m_file = std::make_unique<std::ofstream>(path, std::ios::binary | std::ios::trunc);
    NS_ABORT_MSG_IF(!m_file->good(),
                    "L4sLlmQueueDisc: cannot write the record file '" << path << "'");
    const size_t teachers = info.teachers.size();
    m_teachers = teachers;
    const size_t headerSize = sizeof(Header);
    const size_t requestOffset = headerSize;
    const size_t agentOffset = requestOffset + sizeof(agent::Request);
    const size_t teacherOffset = agentOffset + sizeof(agent::Reply);
    const size_t recordSize = teacherOffset + teachers * sizeof(agent::Reply);
    m_buffer.assign(recordSize, 0);

    std::ostringstream js;
    char hash[32];
    std::snprintf(hash, sizeof(hash), "0x%016llx",
                  static_cast<unsigned long long>(agent::LayoutHash()));
    js << "{\"format\": \"aqm-llm-record\", \"version\": " << kRecordVersion
       << ", \"record_size\": " << recordSize << ", \"record_header_size\": " << headerSize
       << ", \"request_offset\": " << requestOffset << ", \"agent_reply_offset\": " << agentOffset
       << ", \"teacher_replies_offset\": " << teacherOffset
       << ", \"request_size\": " << sizeof(agent::Request)
       << ", \"reply_size\": " << sizeof(agent::Reply)
       << ", \"protocol_version\": " << agent::kProtocolVersion << ", \"layout_hash\": \"" << hash
       << "\", \"teachers\": " << JsonNames(info.teachers, teachers)
       << ", \"acting\": " << JsonString(info.acting)
       << ", \"acting_teacher_index\": " << info.actingTeacherIndex << ", \"mode\": \"record\""
       << ", \"decision_interval_s\": " << JsonNumber(info.decisionIntervalS)
       << ", \"decision_delay_s\": " << JsonNumber(info.decisionDelayS)
       << ", \"batch_size\": " << info.batchSize << ", \"window\": " << agent::kWindow
       << ", \"unit\": \"" << (info.packetUnit ? "packets" : "bytes")
       << "\", \"max_size\": " << info.maxSize
       << ", \"record_header\": [[\"epoch\", \"<u8\", 0], [\"sim_time_ns\", \"<i8\", 8], "
          "[\"actor\", \"<i4\", 16], [\"agent_outcome\", \"<u4\", 20], "
          "[\"teacher_count\", \"<u4\", 24], [\"flags\", \"<u4\", 28], "
          "[\"agent_latency_s\", \"<f8\", 32], [\"effective_time_ns\", \"<i8\", 40], "
          "[\"reserved\", \"(2,)<u8\", 48]]"
       << ", \"flags\": {\"fallback\": 1, \"agent_reply\": 2}"
       << ", \"actor_codes\": {\"-2\": \"fallback\", \"-1\": \"agent\", \">=0\": \"teacher index\"}"
       << ", \"agent_outcomes\": " << JsonNames(info.outcomeNames, info.outcomeNames.size())
       << ", \"series\": " << JsonNames(agent::kSeriesNames, agent::kSeriesDefined)
       << ", \"scalars\": " << JsonNames(agent::kScalarNames, agent::kScalarDefined)
       << ", \"rewards\": " << JsonNames(agent::kRewardNames, agent::kRewardDefined)
       << ", \"rewards_refer_to\": \"the interval that ends at the epoch (effect of the "
          "decisions in force during it)\"}";
    std::string json = js.str();
    const size_t fixed = sizeof(kRecordMagic) + 2 * sizeof(uint32_t);
    const size_t total = ((fixed + json.size() + 1 + 63) / 64) * 64;
    json.resize(total - fixed - 1, ' ');
    json += '\n';
    const uint32_t version = kRecordVersion;
    const uint32_t offset = uint32_t(total);
    m_file->write(kRecordMagic, sizeof(kRecordMagic));
    m_file->write(reinterpret_cast<const char*>(&version), sizeof(version));
    m_file->write(reinterpret_cast<const char*>(&offset), sizeof(offset));
    m_file->write(json.data(), std::streamsize(json.size()));
    NS_ABORT_MSG_IF(!m_file->good(),
                    "L4sLlmQueueDisc: cannot write the record file '" << path << "'");
}

bool
EpochRecordWriter::IsOpen() const
{
    return m_file != nullptr;
}

void
EpochRecordWriter::Write(const Header& header,
                         const agent::Request& request,
                         const agent::Reply* agentReply,
                         const std::vector<agent::Reply>& teacherReplies)
{
    NS_ABORT_MSG_IF(!m_file, "EpochRecordWriter: no record file open");
    NS_ABORT_MSG_IF(teacherReplies.size() != m_teachers,
                    "EpochRecordWriter: " << teacherReplies.size() << " teacher replies for a file of "
                                          << m_teachers);
    std::fill(m_buffer.begin(), m_buffer.end(), 0);
    char* p = m_buffer.data();
    std::memcpy(p, &header, sizeof(header));
    p += sizeof(header);
    std::memcpy(p, &request, sizeof(request));
    p += sizeof(request);
    if (agentReply != nullptr)
    {
        std::memcpy(p, agentReply, sizeof(agent::Reply));
    }
    p += sizeof(agent::Reply);
    for (const auto& reply : teacherReplies)
    {
        std::memcpy(p, &reply, sizeof(reply));
        p += sizeof(reply);
    }
    m_file->write(m_buffer.data(), std::streamsize(m_buffer.size()));
    NS_ABORT_MSG_IF(!m_file->good(),
                    "L4sLlmQueueDisc: cannot write the record file '" << m_path << "'");
}

void
EpochRecordWriter::Close()
{
    if (m_file)
    {
        m_file->flush();
        m_file.reset();
    }
}

} // namespace ns3
