/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * The one message layout of the ns-3 <-> agent shared-memory channel.
 *
 * Both sides compile this header: the ns-3 module (AgentChannel, the queue discs) and the
 * Python extension aqm_llm._channel, which derives its numpy dtypes from these structs with
 * offsetof() (so Python never hard-codes an offset). Everything here is plain old data with
 * fixed capacities and explicit padding; counts say how much of each array is in use.
 * A peer checks the protocol version, the struct sizes and a layout fingerprint when it
 * attaches: a mismatch is an error, never garbage.
 *
 * Units (the contract between the queue disc that fills a request and the agent):
 * times in seconds (sojourn) or nanoseconds (sim_time_ns), sizes in bytes, rates in bit/s,
 * marks and drops as packet counts per interval, probabilities in [0, 1].
 *
 * No ns-3 header is included: this file and the channel (agent-channel.h and the agent-*.cc
 * sources) build without ns-3.
 */
#ifndef AQM_LLM_AGENT_MESSAGES_H
#define AQM_LLM_AGENT_MESSAGES_H

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace ns3
{
namespace agent
{

/// "AQM-LLM1" read as a little-endian 64-bit word; first 8 bytes of every segment.
inline constexpr uint64_t kMagic = 0x314d4c4c2d4d5141ULL;
/// Bump on any change of meaning or layout below.
inline constexpr uint32_t kProtocolVersion = 1;

inline constexpr uint32_t kWindow = 16;     ///< points per time series (W)
inline constexpr uint32_t kMaxSeries = 12;  ///< capacity for time series
inline constexpr uint32_t kMaxScalars = 16; ///< capacity for scalars
inline constexpr uint32_t kMaxPackets = 32; ///< capacity for packet descriptors (K)
inline constexpr uint32_t kMaxRewards = 8;  ///< capacity for reward components
inline constexpr int32_t kMaxPacketSize = 1 << 24; ///< sanity bound on a descriptor's size

/// Row i of Request::series holds series i (rows [0, series_count) are in use).
enum SeriesIndex : uint32_t
{
    kSeriesLSojourn = 0,   ///< L queue sojourn time, s
    kSeriesCSojourn = 1,   ///< C queue sojourn time, s
    kSeriesQueueBytes = 2, ///< total queue length, bytes
    kSeriesArrivalRate = 3,   ///< bit/s
    kSeriesDepartureRate = 4, ///< bit/s
    kSeriesMarks = 5,      ///< CE marks in the interval, packets
    kSeriesDrops = 6,      ///< drops in the interval, packets
    kSeriesCapacity = 7,   ///< link capacity estimate, bit/s
    kSeriesDefined = 8,
};

/// Names of the defined series, by SeriesIndex: what the epoch record file's header lists and
/// what validation messages call a row. The one table of these names in C++ (the record
/// format depends on the spelling: do not rename).
inline constexpr const char* kSeriesNames[kSeriesDefined] = {
    "l_sojourn_s", "c_sojourn_s", "queue_bytes", "arrival_bps",
    "departure_bps", "marks", "drops", "capacity_bps",
};

/// Index into Request::scalars.
enum ScalarIndex : uint32_t
{
    kScalarBurstAllowance = 0, ///< remaining burst allowance, s
    kScalarPPrime = 1,         ///< the fallback controller's base probability p'
    kScalarPL = 2,             ///< the fallback's L marking probability p_L
    kScalarPC = 3,             ///< the fallback's C drop/mark probability p_C
    kScalarDefined = 4,
};

/// Names of the defined scalars, by ScalarIndex (the record file's header lists them).
inline constexpr const char* kScalarNames[kScalarDefined] = {
    "burst_allowance_s", "p_prime", "p_l", "p_c",
};

/// Index into Request::rewards: the epoch's reward components (weights live in the config).
enum RewardIndex : uint32_t
{
    kRewardUtilization = 0, ///< departure rate / capacity, [0, 1]
    kRewardLDelay = 1,      ///< mean L sojourn in the epoch, s
    kRewardCDelay = 2,      ///< mean C sojourn in the epoch, s
    kRewardLoss = 3,        ///< dropped / arrived packets in the epoch
    kRewardDefined = 4,
};

/// Names of the defined reward components, by RewardIndex (the record file's header lists them).
inline constexpr const char* kRewardNames[kRewardDefined] = {
    "utilization", "l_delay_s", "c_delay_s", "loss",
};

/// PacketDescriptor::traffic_class.
enum TrafficClass : uint8_t
{
    kClassL = 0, ///< L4S (ECT(1) or CE)
    kClassC = 1, ///< classic
};

/// PacketAction::action.
enum ActionCode : uint8_t
{
    kActionForward = 0,
    kActionDrop = 1,
    kActionMark = 2,
    kActionCount = 3,
};

/// Reply::status.
enum ReplyStatus : uint32_t
{
    kReplyOk = 0,       ///< apply the actions and probabilities
    kReplyFallback = 1, ///< the agent asks the queue disc to use its fallback this epoch
    kReplyError = 2,    ///< the agent rejected the request (it was invalid)
    kReplyStatusCount = 3,
};

/// One head-of-queue packet. 32 bytes.
struct PacketDescriptor
{
    uint64_t uid;          ///< per-packet id given by the queue disc at enqueue (not Packet::GetUid(), which TCP segments cut from one send-buffer entry share)
    double sojourn_s;      ///< time spent in the queue so far, s (>= 0)
    int32_t size_bytes;    ///< size as the queue disc counts it, bytes (0 .. kMaxPacketSize)
    uint32_t flow_hash;    ///< flow hash (QueueDiscItem::Hash)
    uint8_t traffic_class; ///< TrafficClass
    uint8_t ecn;           ///< ECN codepoint 0..3 (Not-ECT, ECT(1), ECT(0), CE)
    uint8_t reserved[6];
};

/// Per-epoch header of a request. 32 bytes.
struct RequestHeader
{
    uint64_t seq;        ///< set by the channel on posting: 1, 2, 3, ...; the reply echoes it
    uint64_t epoch;      ///< decision epoch index
    int64_t sim_time_ns; ///< simulation time of the epoch, ns (>= 0)
    uint32_t flags;      ///< free for the queue disc and agent to agree on
    uint32_t reserved;
};

/// ns-3 -> agent, one per epoch. 2808 bytes.
struct Request
{
    RequestHeader header;
    uint32_t series_count; ///< rows of `series` in use (<= kMaxSeries), row i = SeriesIndex i
    uint32_t window_len;   ///< points in use per row (<= kWindow), oldest first
    uint32_t scalar_count; ///< <= kMaxScalars
    uint32_t packet_count; ///< <= kMaxPackets
    uint32_t reward_count; ///< <= kMaxRewards
    uint32_t reserved;
    double series[kMaxSeries][kWindow];
    double scalars[kMaxScalars];
    PacketDescriptor packets[kMaxPackets];
    double rewards[kMaxRewards];
};

/// What to do with one described packet. 16 bytes.
struct PacketAction
{
    uint64_t uid;   ///< must equal the uid of the request's packets[i] for actions[i]
    uint8_t action; ///< ActionCode
    uint8_t reserved[7];
};

/// agent -> ns-3, one per request. 560 bytes.
struct Reply
{
    uint64_t seq;          ///< echo of RequestHeader::seq (set by the channel on posting)
    uint32_t status;       ///< ReplyStatus
    uint32_t action_count; ///< <= the request's packet_count; actions[i] applies to packets[i]
    double p_l_mark;       ///< mark probability for L packets not in the batch
    double p_c_drop;       ///< drop probability for C packets not in the batch
    double p_c_mark;       ///< mark probability for ECN-capable C packets not in the batch
    double reserved;
    PacketAction actions[kMaxPackets];
};

/// PartyState of SegmentHeader::creator_state / attacher_state.
enum PartyState : uint32_t
{
    kPartyAbsent = 0,
    kPartyActive = 1,
    kPartyClosed = 2,
};

/// SegmentHeader::attach_result.
enum AttachResult : uint32_t
{
    kAttachNone = 0,
    kAttachOk = 1,
    kAttachMismatch = 2, ///< the attacher speaks another version/layout; see attacher_* fields
};

/**
 * Control block at offset 0 of every segment.
 *
 * The first 256 bytes are frozen across protocol versions (identity, pids, attach result,
 * the two futex doorbells), so that mismatching peers can still report the mismatch to each
 * other. Each party waits only on its own doorbell (a 32-bit futex word); the other party
 * increments it after every event (message posted, attach, close) and calls FUTEX_WAKE
 * when the waiter count says someone sleeps. Request/reply ownership is given by the two
 * sequence counters: a request is outstanding while request_seq != reply_seq.
 */
struct alignas(64) SegmentHeader
{
    // --- identity (frozen) ---
    uint64_t magic;            ///< kMagic, written last by the creator
    uint32_t protocol_version; ///< creator's kProtocolVersion
    uint32_t header_size;      ///< sizeof(SegmentHeader)
    uint32_t request_size;     ///< sizeof(Request)
    uint32_t reply_size;       ///< sizeof(Reply)
    uint64_t layout_hash;      ///< LayoutHash()
    uint32_t request_offset;   ///< where the Request lives in the segment
    uint32_t reply_offset;     ///< where the Reply lives in the segment
    uint64_t segment_size;     ///< bytes mapped
    int32_t creator_pid;
    uint32_t creator_state;      ///< PartyState
    uint64_t creator_start_time; ///< /proc/<pid>/stat field 22 (guards against pid reuse)
    // --- attach (frozen) ---
    int32_t attacher_pid;        ///< 0 until attached (set by compare-and-swap)
    uint32_t attacher_state;     ///< PartyState
    uint64_t attacher_start_time;
    uint32_t attach_result;      ///< AttachResult
    uint32_t attacher_version;   ///< the attacher's kProtocolVersion
    uint32_t attacher_header_size;
    uint32_t attacher_request_size;
    uint32_t attacher_reply_size;
    uint32_t reserved0;
    uint64_t attacher_layout_hash;
    uint64_t reserved1[2];
    // --- doorbells (frozen) ---
    alignas(64) uint32_t creator_bell; ///< futex word the creator sleeps on
    uint32_t creator_waiters;
    alignas(64) uint32_t attacher_bell; ///< futex word the attacher sleeps on
    uint32_t attacher_waiters;
    // --- message ownership (version 1) ---
    alignas(64) uint64_t request_seq; ///< seq of the last posted request
    alignas(64) uint64_t reply_seq;   ///< seq of the last answered request
};

inline constexpr uint32_t kFrozenPrefixSize = 256;

static_assert(std::is_standard_layout_v<SegmentHeader> && std::is_trivially_copyable_v<SegmentHeader>);
static_assert(std::is_standard_layout_v<Request> && std::is_trivially_copyable_v<Request>);
static_assert(std::is_standard_layout_v<Reply> && std::is_trivially_copyable_v<Reply>);
static_assert(sizeof(PacketDescriptor) == 32 && sizeof(PacketAction) == 16);
static_assert(sizeof(RequestHeader) == 32);
static_assert(sizeof(Request) == 2808 && sizeof(Reply) == 560);
static_assert(sizeof(SegmentHeader) == 384);
static_assert(offsetof(SegmentHeader, attacher_pid) == 64);
static_assert(offsetof(SegmentHeader, creator_bell) == 128);
static_assert(offsetof(SegmentHeader, attacher_bell) == 192);
static_assert(offsetof(SegmentHeader, request_seq) == kFrozenPrefixSize);

/// Offsets of the two messages inside a segment, and its total size (page-rounded).
inline constexpr uint32_t kRequestOffset = 384;
inline constexpr uint32_t kReplyOffset = kRequestOffset + ((sizeof(Request) + 63) / 64) * 64;
inline constexpr uint64_t kSegmentSize = ((kReplyOffset + sizeof(Reply) + 4095) / 4096) * 4096;
static_assert(kRequestOffset >= sizeof(SegmentHeader));

namespace detail
{
constexpr uint64_t
Fnv1a(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; ++i)
    {
        h ^= (v >> (8 * i)) & 0xffU;
        h *= 0x100000001b3ULL;
    }
    return h;
}
} // namespace detail

/**
 * Fingerprint of every field's offset and size and of the capacities. Two programs agree on
 * it only if they were compiled from the same layout (catches a stale binary whose author
 * forgot to bump kProtocolVersion).
 */
constexpr uint64_t
LayoutHash()
{
#define AQM_LLM_F(S, f) offsetof(S, f), sizeof(S::f)
    const uint64_t items[] = {
        kProtocolVersion, kWindow, kMaxSeries, kMaxScalars, kMaxPackets, kMaxRewards,
        sizeof(PacketDescriptor), AQM_LLM_F(PacketDescriptor, uid),
        AQM_LLM_F(PacketDescriptor, sojourn_s), AQM_LLM_F(PacketDescriptor, size_bytes),
        AQM_LLM_F(PacketDescriptor, flow_hash), AQM_LLM_F(PacketDescriptor, traffic_class),
        AQM_LLM_F(PacketDescriptor, ecn),
        sizeof(RequestHeader), AQM_LLM_F(RequestHeader, seq), AQM_LLM_F(RequestHeader, epoch),
        AQM_LLM_F(RequestHeader, sim_time_ns), AQM_LLM_F(RequestHeader, flags),
        sizeof(Request), AQM_LLM_F(Request, header), AQM_LLM_F(Request, series_count),
        AQM_LLM_F(Request, window_len), AQM_LLM_F(Request, scalar_count),
        AQM_LLM_F(Request, packet_count), AQM_LLM_F(Request, reward_count),
        AQM_LLM_F(Request, series), AQM_LLM_F(Request, scalars), AQM_LLM_F(Request, packets),
        AQM_LLM_F(Request, rewards),
        sizeof(PacketAction), AQM_LLM_F(PacketAction, uid), AQM_LLM_F(PacketAction, action),
        sizeof(Reply), AQM_LLM_F(Reply, seq), AQM_LLM_F(Reply, status),
        AQM_LLM_F(Reply, action_count), AQM_LLM_F(Reply, p_l_mark), AQM_LLM_F(Reply, p_c_drop),
        AQM_LLM_F(Reply, p_c_mark), AQM_LLM_F(Reply, actions),
        sizeof(SegmentHeader), AQM_LLM_F(SegmentHeader, request_seq),
        AQM_LLM_F(SegmentHeader, reply_seq), kRequestOffset, kReplyOffset, kSegmentSize,
    };
#undef AQM_LLM_F
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint64_t v : items)
    {
        h = detail::Fnv1a(h, v);
    }
    return h;
}

} // namespace agent
} // namespace ns3

#endif // AQM_LLM_AGENT_MESSAGES_H
