/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * aqm_llm._channel: pybind11 binding of ns3::AgentChannel for the Python agent.
 *
 * Deliberately thin: status codes come back as ints and aqm_llm.channel turns them into
 * exceptions; the message slots are exported through the buffer protocol (numpy views onto
 * the shared memory, which stay valid while any view lives); the numpy dtypes are described
 * by layout(), computed here with offsetof() from agent-messages.h. Waits release the GIL and
 * run Python signal handlers (so Ctrl-C works while blocked).
 */
#include "agent-channel.h"

#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

namespace py = pybind11;
using ns3::AgentChannel;
namespace agent = ns3::agent;

namespace
{

// ------------------------------------------------------------------ layout description

template <class T>
const char*
TypeStr()
{
    if constexpr (std::is_same_v<T, uint64_t>)
    {
        return "<u8";
    }
    else if constexpr (std::is_same_v<T, int64_t>)
    {
        return "<i8";
    }
    else if constexpr (std::is_same_v<T, uint32_t>)
    {
        return "<u4";
    }
    else if constexpr (std::is_same_v<T, int32_t>)
    {
        return "<i4";
    }
    else if constexpr (std::is_same_v<T, uint8_t>)
    {
        return "u1";
    }
    else if constexpr (std::is_same_v<T, double>)
    {
        return "<f8";
    }
    else if constexpr (std::is_same_v<T, agent::PacketDescriptor>)
    {
        return "packet";
    }
    else if constexpr (std::is_same_v<T, agent::PacketAction>)
    {
        return "action";
    }
    else if constexpr (std::is_same_v<T, agent::RequestHeader>)
    {
        return "request_header";
    }
    else
    {
        static_assert(sizeof(T) == 0, "no dtype for this field type");
    }
}

// (name, offset, base type or struct key, shape) of one field.
template <class Field>
py::tuple
Describe(const char* name, size_t offset)
{
    using Base = std::remove_all_extents_t<Field>;
    py::tuple shape;
    if constexpr (std::rank_v<Field> == 1)
    {
        shape = py::make_tuple(std::extent_v<Field, 0>);
    }
    else if constexpr (std::rank_v<Field> == 2)
    {
        shape = py::make_tuple(std::extent_v<Field, 0>, std::extent_v<Field, 1>);
    }
    return py::make_tuple(name, offset, TypeStr<Base>(), shape);
}

#define AQM_FIELD(S, f) Describe<decltype(S::f)>(#f, offsetof(S, f))

py::dict
Struct(size_t itemsize, py::list fields)
{
    py::dict d;
    d["itemsize"] = itemsize;
    d["fields"] = fields;
    return d;
}

py::dict
Layout()
{
    using agent::PacketAction;
    using agent::PacketDescriptor;
    using agent::Reply;
    using agent::Request;
    using agent::RequestHeader;
    using agent::SegmentHeader;
    py::dict layout;
    // Ordered so that a struct's nested types come before it.
    layout["packet"] = Struct(sizeof(PacketDescriptor),
                              py::list(py::make_tuple(AQM_FIELD(PacketDescriptor, uid),
                                                      AQM_FIELD(PacketDescriptor, sojourn_s),
                                                      AQM_FIELD(PacketDescriptor, size_bytes),
                                                      AQM_FIELD(PacketDescriptor, flow_hash),
                                                      AQM_FIELD(PacketDescriptor, traffic_class),
                                                      AQM_FIELD(PacketDescriptor, ecn))));
    layout["action"] = Struct(sizeof(PacketAction),
                              py::list(py::make_tuple(AQM_FIELD(PacketAction, uid),
                                                      AQM_FIELD(PacketAction, action))));
    layout["request_header"] =
        Struct(sizeof(RequestHeader),
               py::list(py::make_tuple(AQM_FIELD(RequestHeader, seq),
                                       AQM_FIELD(RequestHeader, epoch),
                                       AQM_FIELD(RequestHeader, sim_time_ns),
                                       AQM_FIELD(RequestHeader, flags))));
    layout["request"] = Struct(sizeof(Request),
                               py::list(py::make_tuple(AQM_FIELD(Request, header),
                                                       AQM_FIELD(Request, series_count),
                                                       AQM_FIELD(Request, window_len),
                                                       AQM_FIELD(Request, scalar_count),
                                                       AQM_FIELD(Request, packet_count),
                                                       AQM_FIELD(Request, reward_count),
                                                       AQM_FIELD(Request, series),
                                                       AQM_FIELD(Request, scalars),
                                                       AQM_FIELD(Request, packets),
                                                       AQM_FIELD(Request, rewards))));
    layout["reply"] = Struct(sizeof(Reply),
                             py::list(py::make_tuple(AQM_FIELD(Reply, seq),
                                                     AQM_FIELD(Reply, status),
                                                     AQM_FIELD(Reply, action_count),
                                                     AQM_FIELD(Reply, p_l_mark),
                                                     AQM_FIELD(Reply, p_c_drop),
                                                     AQM_FIELD(Reply, p_c_mark),
                                                     AQM_FIELD(Reply, actions))));
    py::list header;
    for (auto field : {AQM_FIELD(SegmentHeader, magic),
                       AQM_FIELD(SegmentHeader, protocol_version),
                       AQM_FIELD(SegmentHeader, header_size),
                       AQM_FIELD(SegmentHeader, request_size),
                       AQM_FIELD(SegmentHeader, reply_size),
                       AQM_FIELD(SegmentHeader, layout_hash),
                       AQM_FIELD(SegmentHeader, request_offset),
                       AQM_FIELD(SegmentHeader, reply_offset),
                       AQM_FIELD(SegmentHeader, segment_size),
                       AQM_FIELD(SegmentHeader, creator_pid),
                       AQM_FIELD(SegmentHeader, creator_state),
                       AQM_FIELD(SegmentHeader, creator_start_time),
                       AQM_FIELD(SegmentHeader, attacher_pid),
                       AQM_FIELD(SegmentHeader, attacher_state),
                       AQM_FIELD(SegmentHeader, attacher_start_time),
                       AQM_FIELD(SegmentHeader, attach_result),
                       AQM_FIELD(SegmentHeader, attacher_version),
                       AQM_FIELD(SegmentHeader, attacher_layout_hash),
                       AQM_FIELD(SegmentHeader, creator_bell),
                       AQM_FIELD(SegmentHeader, attacher_bell),
                       AQM_FIELD(SegmentHeader, request_seq),
                       AQM_FIELD(SegmentHeader, reply_seq)})
    {
        header.append(field);
    }
    layout["segment_header"] = Struct(sizeof(SegmentHeader), header);
    return layout;
}

#undef AQM_FIELD

py::dict
Enums()
{
    py::dict series;
    series["L_SOJOURN"] = int(agent::kSeriesLSojourn);
    series["C_SOJOURN"] = int(agent::kSeriesCSojourn);
    series["QUEUE_BYTES"] = int(agent::kSeriesQueueBytes);
    series["ARRIVAL_RATE"] = int(agent::kSeriesArrivalRate);
    series["DEPARTURE_RATE"] = int(agent::kSeriesDepartureRate);
    series["MARKS"] = int(agent::kSeriesMarks);
    series["DROPS"] = int(agent::kSeriesDrops);
    series["CAPACITY"] = int(agent::kSeriesCapacity);
    py::dict scalars;
    scalars["BURST_ALLOWANCE"] = int(agent::kScalarBurstAllowance);
    scalars["P_PRIME"] = int(agent::kScalarPPrime);
    scalars["P_L"] = int(agent::kScalarPL);
    scalars["P_C"] = int(agent::kScalarPC);
    py::dict rewards;
    rewards["UTILIZATION"] = int(agent::kRewardUtilization);
    rewards["L_DELAY"] = int(agent::kRewardLDelay);
    rewards["C_DELAY"] = int(agent::kRewardCDelay);
    rewards["LOSS"] = int(agent::kRewardLoss);
    py::dict classes;
    classes["L"] = int(agent::kClassL);
    classes["C"] = int(agent::kClassC);
    py::dict actions;
    actions["FORWARD"] = int(agent::kActionForward);
    actions["DROP"] = int(agent::kActionDrop);
    actions["MARK"] = int(agent::kActionMark);
    py::dict replyStatus;
    replyStatus["OK"] = int(agent::kReplyOk);
    replyStatus["FALLBACK"] = int(agent::kReplyFallback);
    replyStatus["ERROR"] = int(agent::kReplyError);
    py::dict status;
    status["OK"] = int(AgentChannel::Status::Ok);
    status["TIMEOUT"] = int(AgentChannel::Status::Timeout);
    status["PEER_GONE"] = int(AgentChannel::Status::PeerGone);
    status["INVALID"] = int(AgentChannel::Status::Invalid);
    status["INTERRUPTED"] = int(AgentChannel::Status::Interrupted);
    py::dict errors;
    for (int e = 0; e <= int(AgentChannel::Error::Interrupted); ++e)
    {
        errors[AgentChannel::ErrorName(AgentChannel::Error(e))] = e;
    }
    py::dict all;
    all["series"] = series;
    all["scalar"] = scalars;
    all["reward"] = rewards;
    all["traffic_class"] = classes;
    all["action"] = actions;
    all["reply_status"] = replyStatus;
    all["status"] = status;
    all["error"] = errors;
    return all;
}

// ------------------------------------------------------------------ channel wrapper

/// A message slot exported through the buffer protocol; holds the channel (and so the
/// mapping) alive for as long as any numpy view onto it exists.
struct SlotBuffer
{
    std::shared_ptr<AgentChannel> owner;
    void* data;
    size_t size;
};

struct PyChannel
{
    std::shared_ptr<AgentChannel> chan;

    template <class Fn>
    int Wait(Fn fn)
    {
        AgentChannel::Status s;
        {
            py::gil_scoped_release release;
            s = fn();
        }
        if (s == AgentChannel::Status::Interrupted)
        {
            if (PyErr_Occurred() != nullptr)
            {
                throw py::error_already_set();
            }
        }
        return int(s);
    }
};

py::tuple
Opened(AgentChannel::Opened&& opened)
{
    py::object channel = py::none();
    if (opened.channel)
    {
        opened.channel->SetInterruptCheck([] {
            py::gil_scoped_acquire acquire;
            return PyErr_CheckSignals() != 0;
        });
        channel = py::cast(PyChannel{std::shared_ptr<AgentChannel>(std::move(opened.channel))});
    }
    return py::make_tuple(int(opened.status), int(opened.error), opened.message, channel);
}

AgentChannel::Options
MakeOptions(double spinSeconds, double livenessInterval, int32_t expectedPeerPid)
{
    AgentChannel::Options o;
    o.spinSeconds = spinSeconds;
    o.livenessInterval = livenessInterval;
    o.expectedPeerPid = expectedPeerPid;
    o.installSignalHandlers = false; // Python installs its own (aqm_llm.channel)
    o.unlinkAfterAttach = true;
    return o;
}

template <class T>
T
CopyFromBuffer(const py::buffer& buffer, const char* what)
{
    py::buffer_info info = buffer.request();
    if (size_t(info.size * info.itemsize) != sizeof(T))
    {
        throw py::value_error(std::string(what) + " buffer holds " +
                              std::to_string(info.size * info.itemsize) + " bytes, not " +
                              std::to_string(sizeof(T)));
    }
    T value;
    std::memcpy(&value, info.ptr, sizeof(T)); // the buffer may be unaligned
    return value;
}

} // namespace

PYBIND11_MODULE(_channel, m)
{
    m.doc() = "Shared-memory agent channel (C++ core of aqm_llm.channel)";

    m.attr("PROTOCOL_VERSION") = agent::kProtocolVersion;
    m.attr("WINDOW") = agent::kWindow;
    m.attr("MAX_SERIES") = agent::kMaxSeries;
    m.attr("MAX_SCALARS") = agent::kMaxScalars;
    m.attr("MAX_PACKETS") = agent::kMaxPackets;
    m.attr("MAX_REWARDS") = agent::kMaxRewards;
    m.attr("MAX_PACKET_SIZE") = agent::kMaxPacketSize;
    m.attr("REQUEST_SIZE") = sizeof(agent::Request);
    m.attr("REPLY_SIZE") = sizeof(agent::Reply);
    m.attr("HEADER_SIZE") = sizeof(agent::SegmentHeader);
    m.attr("FROZEN_PREFIX_SIZE") = agent::kFrozenPrefixSize;
    m.attr("REQUEST_OFFSET") = agent::kRequestOffset;
    m.attr("REPLY_OFFSET") = agent::kReplyOffset;
    m.attr("SEGMENT_SIZE") = agent::kSegmentSize;
    m.attr("LAYOUT_HASH") = agent::LayoutHash();
    m.attr("MAGIC") = agent::kMagic;

    m.def("layout", &Layout, "Field (name, offset, type, shape) lists of the message structs");
    m.def("enums", &Enums, "Enum values of the protocol");

    py::class_<SlotBuffer>(m, "SlotBuffer", py::buffer_protocol())
        .def_buffer([](SlotBuffer& s) {
            return py::buffer_info(s.data, 1, py::format_descriptor<uint8_t>::format(), 1,
                                   {py::ssize_t(s.size)}, {py::ssize_t(1)}, false);
        })
        .def("__len__", [](const SlotBuffer& s) { return s.size; });

    py::class_<PyChannel>(m, "Channel")
        .def_property_readonly("name", [](const PyChannel& c) { return c.chan->Name(); })
        .def_property_readonly("is_creator",
                               [](const PyChannel& c) {
                                   return c.chan->GetSide() == AgentChannel::Side::Creator;
                               })
        .def_property_readonly("peer_pid", [](const PyChannel& c) { return c.chan->PeerPid(); })
        .def_property_readonly("peer_attached",
                               [](const PyChannel& c) { return c.chan->IsPeerAttached(); })
        .def_property_readonly("closed", [](const PyChannel& c) { return c.chan->IsClosed(); })
        .def_property_readonly("last_error",
                               [](const PyChannel& c) { return c.chan->LastError(); })
        .def_property_readonly("last_error_kind",
                               [](const PyChannel& c) { return int(c.chan->LastErrorKind()); })
        .def_property_readonly("stale_replies",
                               [](const PyChannel& c) { return c.chan->StaleReplies(); })
        .def_property_readonly("has_outstanding_request",
                               [](const PyChannel& c) { return c.chan->HasOutstandingRequest(); })
        .def_property_readonly("last_request_seq",
                               [](const PyChannel& c) { return c.chan->LastRequestSeq(); })
        .def("close", [](PyChannel& c) { c.chan->Close(); })
        .def("watch_peer", [](PyChannel& c, int32_t pid) { c.chan->SetExpectedPeerPid(pid); })
        .def("request_buffer",
             [](PyChannel& c) {
                 return SlotBuffer{c.chan, &c.chan->RequestSlot(), sizeof(agent::Request)};
             })
        .def("reply_buffer",
             [](PyChannel& c) {
                 return SlotBuffer{c.chan, &c.chan->ReplySlot(), sizeof(agent::Reply)};
             })
        .def("wait_attached",
             [](PyChannel& c, double t) { return c.Wait([&] { return c.chan->WaitAttached(t); }); })
        .def("wait_request",
             [](PyChannel& c, double t) { return c.Wait([&] { return c.chan->WaitRequest(t); }); })
        .def("acquire_request_slot",
             [](PyChannel& c, double t) {
                 return c.Wait([&] { return c.chan->AcquireRequestSlot(t); });
             })
        .def("wait_reply",
             [](PyChannel& c, double t) { return c.Wait([&] { return c.chan->WaitReply(t); }); })
        .def("post_reply",
             [](PyChannel& c, bool validate) { return int(c.chan->PostReply(validate)); },
             py::arg("validate") = true)
        .def("post_request",
             [](PyChannel& c, bool validate) { return int(c.chan->PostRequest(validate)); },
             py::arg("validate") = true)
        .def("request_counts",
             [](PyChannel& c) {
                 // Snapshot, clamped to capacity: slicing with these never reads past the end.
                 const agent::Request& r = c.chan->RequestSlot();
                 return py::make_tuple(r.header.seq, r.header.epoch, r.header.sim_time_ns,
                                       r.header.flags,
                                       std::min(r.series_count, agent::kMaxSeries),
                                       std::min(r.window_len, agent::kWindow),
                                       std::min(r.scalar_count, agent::kMaxScalars),
                                       std::min(r.packet_count, agent::kMaxPackets),
                                       std::min(r.reward_count, agent::kMaxRewards));
             })
        .def("reply_counts", [](PyChannel& c) {
            const agent::Reply& r = c.chan->ReplySlot();
            return py::make_tuple(r.seq, r.status, std::min(r.action_count, agent::kMaxPackets),
                                  r.p_l_mark, r.p_c_drop, r.p_c_mark);
        });

    m.def(
        "create",
        [](double spin, double liveness, int32_t expectedPeerPid) {
            return Opened(AgentChannel::Create(MakeOptions(spin, liveness, expectedPeerPid)));
        },
        py::arg("spin_s"), py::arg("liveness_s"), py::arg("expected_peer_pid") = 0,
        "(status, error, message, Channel|None): a new uniquely named segment (stale segments "
        "of dead processes are removed first)");
    m.def(
        "attach",
        [](const std::string& name, double spin, double liveness) {
            return Opened(AgentChannel::Attach(name, MakeOptions(spin, liveness, 0)));
        },
        py::arg("name"), py::arg("spin_s"), py::arg("liveness_s"),
        "(status, error, message, Channel|None): attach to an existing segment");
    m.def(
        "validate_request",
        [](const py::buffer& b) -> py::object {
            auto r = CopyFromBuffer<agent::Request>(b, "request");
            std::string why;
            if (AgentChannel::ValidateRequest(r, &why))
            {
                return py::none();
            }
            return py::str(why);
        },
        "None if the request bytes are valid, else the reason");
    m.def(
        "validate_reply",
        [](const py::buffer& b, const py::object& request) -> py::object {
            auto reply = CopyFromBuffer<agent::Reply>(b, "reply");
            std::string why;
            bool ok;
            if (request.is_none())
            {
                ok = AgentChannel::ValidateReply(reply, nullptr, &why);
            }
            else
            {
                auto r = CopyFromBuffer<agent::Request>(request.cast<py::buffer>(), "request");
                ok = AgentChannel::ValidateReply(reply, &r, &why);
            }
            return ok ? py::object(py::none()) : py::object(py::str(why));
        },
        py::arg("reply"), py::arg("request") = py::none(),
        "None if the reply bytes are valid (for that request, if given), else the reason");
    m.def("new_segment_name", &AgentChannel::NewSegmentName);
    m.def("remove_stale_segments", &AgentChannel::RemoveStaleSegments);
    m.def("cleanup_registered", &AgentChannel::CleanupRegistered, py::arg("mark_closed") = true,
          "Unlink this process's channel names; with mark_closed, also mark them closed and "
          "wake the peers");
    m.def("process_alive", &AgentChannel::ProcessAlive, py::arg("pid"),
          py::arg("start_time") = 0);
    m.def("status_name",
          [](int s) { return AgentChannel::StatusName(AgentChannel::Status(s)); });
}
