/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * aqm-llm-channel-peer: the ns-3 end of the agent channel as a small stand-alone program, for
 * the channel tests and `aqm-llm bench channel`. It speaks exactly what L4sLlmQueueDisc speaks
 * (ns3::AgentChannel, agent-messages.h) without running a simulation.
 *
 *   --mode=client   the queue disc's role: send --rounds requests (synthetic, full size, with
 *                   --packets descriptors), wait for each reply, measure the round trips.
 *                   --transport=shm (default, --channel=NAME), or for comparison the same
 *                   messages as raw bytes over --transport=zmq (REQ socket, --endpoint=tcp://...,
 *                   libzmq loaded with dlopen from --libzmq=PATH) or --transport=uds
 *                   (--endpoint=/path/to/socket, stream socket).
 *   --mode=relay    server on --channel (the test is the client there), client on --channel2
 *                   (the test is the server there): every request and reply crosses both.
 *   --mode=idle     attach to --channel and do nothing until the peer dies (or --duration).
 *   --mode=bad      attach and send one malformed request (--bad=packets|series|window|
 *                   scalars|rewards|nan|inf|negsize|class|ecn|negtime), bypassing validation.
 *   --mode=create   create a channel (C++ as creator), print its name, answer requests.
 *
 * Output: one JSON object per line on stdout ("event": ready, created, timeout, invalid,
 * peer_gone, done, ...). Exit status: 0 ok, 2 usage, 3 peer gone, 4 timeout, 5 invalid.
 */
#include "ns3/agent-channel.h"
#include "ns3/aqm-json.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dlfcn.h>
#include <map>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

using ns3::AgentChannel;
namespace agent = ns3::agent;
using Status = AgentChannel::Status;

namespace
{

// ------------------------------------------------------------------ small helpers

int64_t
Now(clockid_t clock = CLOCK_MONOTONIC)
{
    timespec ts;
    clock_gettime(clock, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void
SleepMs(double ms)
{
    if (ms <= 0)
    {
        return;
    }
    timespec ts;
    ts.tv_sec = time_t(ms / 1000);
    ts.tv_nsec = long(std::fmod(ms, 1000.0) * 1e6);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    {
    }
}


/// Builds one JSON line: Line("event", "ready").Add("n", 3).Print().
class Line
{
  public:
    Line(const char* event)
    {
        m_s = "{\"event\":" + ns3::JsonString(event);
    }

    Line& Add(const char* key, const std::string& value)
    {
        m_s += std::string(",\"") + key + "\":" + ns3::JsonString(value);
        return *this;
    }

    Line& Add(const char* key, const char* value)
    {
        return Add(key, std::string(value));
    }

    Line& Add(const char* key, double value)
    {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%.9g", value);
        m_s += std::string(",\"") + key + "\":" + (std::isfinite(value) ? buf : "null");
        return *this;
    }

    Line& Add(const char* key, int64_t value)
    {
        m_s += std::string(",\"") + key + "\":" + std::to_string(value);
        return *this;
    }

    Line& Add(const char* key, uint64_t value)
    {
        m_s += std::string(",\"") + key + "\":" + std::to_string(value);
        return *this;
    }

    Line& Add(const char* key, int value)
    {
        return Add(key, int64_t(value));
    }

    void Print()
    {
        std::printf("%s}\n", m_s.c_str());
        std::fflush(stdout);
    }

  private:
    std::string m_s;
};

struct Args
{
    std::map<std::string, std::string> values;

    std::string Get(const std::string& key, const std::string& def = "") const
    {
        auto it = values.find(key);
        return it == values.end() ? def : it->second;
    }

    double Num(const std::string& key, double def) const
    {
        auto it = values.find(key);
        return it == values.end() ? def : std::strtod(it->second.c_str(), nullptr);
    }

    bool Has(const std::string& key) const
    {
        return values.count(key) != 0;
    }
};

AgentChannel::Options
ChannelOptions(const Args& args)
{
    AgentChannel::Options o;
    o.spinSeconds = args.Num("spin-us", o.spinSeconds * 1e6) * 1e-6;
    o.livenessInterval = args.Num("liveness-ms", o.livenessInterval * 1e3) * 1e-3;
    return o;
}

int
ExitFor(Status s)
{
    switch (s)
    {
    case Status::Ok:
        return 0;
    case Status::PeerGone:
        return 3;
    case Status::Timeout:
        return 4;
    default:
        return 5;
    }
}

std::unique_ptr<AgentChannel>
AttachOrDie(const std::string& name, const Args& args)
{
    AgentChannel::Opened opened = AgentChannel::Attach(name, ChannelOptions(args));
    if (!opened.channel)
    {
        Line("error")
            .Add("status", AgentChannel::StatusName(opened.status))
            .Add("error", AgentChannel::ErrorName(opened.error))
            .Add("message", opened.message)
            .Print();
        std::exit(opened.error == AgentChannel::Error::ProtocolMismatch ? 6 : 5);
    }
    return std::move(opened.channel);
}

void
ReportFailure(const char* event, const AgentChannel& chan, Status s, uint64_t round)
{
    Line(event)
        .Add("round", round)
        .Add("status", AgentChannel::StatusName(s))
        .Add("error", AgentChannel::ErrorName(chan.LastErrorKind()))
        .Add("message", chan.LastError())
        .Add("t_ns", Now())
        .Print();
}

// ------------------------------------------------------------------ synthetic requests

/// A full-size request whose every value is a function of (round, tag).
void
FillRequest(agent::Request& r, uint64_t round, uint32_t packets, uint32_t tag)
{
    r.header.epoch = round;
    r.header.sim_time_ns = int64_t(round) * 16000000;
    r.header.flags = tag;
    r.series_count = agent::kSeriesDefined;
    r.window_len = agent::kWindow;
    for (uint32_t i = 0; i < agent::kSeriesDefined; ++i)
    {
        for (uint32_t j = 0; j < agent::kWindow; ++j)
        {
            r.series[i][j] = double((round + j) % 97) * (i + 1) * 0.001;
        }
    }
    r.scalar_count = agent::kScalarDefined;
    r.scalars[agent::kScalarBurstAllowance] = 0.015;
    r.scalars[agent::kScalarPPrime] = 0.01 * double(round % 10);
    r.scalars[agent::kScalarPL] = 0.02;
    r.scalars[agent::kScalarPC] = 0.0001;
    r.packet_count = std::min(packets, agent::kMaxPackets);
    for (uint32_t i = 0; i < r.packet_count; ++i)
    {
        agent::PacketDescriptor& p = r.packets[i];
        p.uid = (uint64_t(tag) << 40) | (round * agent::kMaxPackets + i);
        p.sojourn_s = 1e-4 * i;
        p.size_bytes = 1500 - int32_t(i);
        p.flow_hash = uint32_t(i * 2654435761u);
        p.traffic_class = uint8_t(i % 2);
        p.ecn = uint8_t(i % 2 == 0 ? 1 : 2);
    }
    r.reward_count = agent::kRewardDefined;
    for (uint32_t i = 0; i < agent::kRewardDefined; ++i)
    {
        r.rewards[i] = 0.25 * i;
    }
}

/// What the test/benchmark agents answer with for p_l_mark (so cross-talk is detected).
double
ExpectedPLMark(uint64_t epoch, uint32_t tag)
{
    return double((epoch + 7 * uint64_t(tag)) % 1000) / 1000.0;
}

// ------------------------------------------------------------------ transports

/// One request/reply exchange; the shm one is AgentChannel::Call, the others move the same
/// structs as raw bytes (with the same validation on both ends).
class Transport
{
  public:
    virtual ~Transport() = default;
    virtual Status Call(agent::Request& req, agent::Reply& rep, double timeout) = 0;
    virtual std::string LastError() const = 0;
    virtual const char* ErrorKind() const = 0;
};

class ShmTransport : public Transport
{
  public:
    explicit ShmTransport(std::unique_ptr<AgentChannel> chan)
        : m_chan(std::move(chan))
    {
    }

    Status Call(agent::Request& req, agent::Reply& rep, double timeout) override
    {
        return m_chan->Call(req, rep, timeout);
    }

    std::string LastError() const override
    {
        return m_chan->LastError();
    }

    const char* ErrorKind() const override
    {
        return AgentChannel::ErrorName(m_chan->LastErrorKind());
    }

  private:
    std::unique_ptr<AgentChannel> m_chan;
};

/// Byte-stream transports: validate, send sizeof(Request) bytes, receive sizeof(Reply).
class ByteTransport : public Transport
{
  public:
    Status Call(agent::Request& req, agent::Reply& rep, double /* timeout: blocking I/O */) override
    {
        req.header.seq = ++m_seq;
        std::string why;
        if (!AgentChannel::ValidateRequest(req, &why))
        {
            return Fail(Status::Invalid, "BadMessage", "invalid request: " + why);
        }
        Status s = Exchange(req, rep);
        if (s != Status::Ok)
        {
            return s;
        }
        if (rep.seq != req.header.seq)
        {
            return Fail(Status::Invalid, "BadMessage", "reply seq does not echo the request");
        }
        if (!AgentChannel::ValidateReply(rep, &req, &why))
        {
            return Fail(Status::Invalid, "BadMessage", "invalid reply: " + why);
        }
        return Status::Ok;
    }

    std::string LastError() const override
    {
        return m_error;
    }

    const char* ErrorKind() const override
    {
        return m_kind;
    }

  protected:
    virtual Status Exchange(const agent::Request& req, agent::Reply& rep) = 0;

    Status Fail(Status s, const char* kind, std::string message)
    {
        m_kind = kind;
        m_error = std::move(message);
        return s;
    }

  private:
    uint64_t m_seq{0};
    std::string m_error;
    const char* m_kind{"None"};
};

/// ZeroMQ REQ socket (ns3-gym's design), libzmq loaded at run time: there is no zmq.h on
/// this machine, but pyzmq ships the shared library. The few C entry points are stable ABI.
class ZmqTransport : public ByteTransport
{
  public:
    static std::unique_ptr<ZmqTransport> Open(const std::string& lib, const std::string& endpoint,
                                              std::string* error)
    {
        auto t = std::unique_ptr<ZmqTransport>(new ZmqTransport);
        t->m_lib = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (t->m_lib == nullptr)
        {
            *error = std::string("dlopen(") + lib + "): " + dlerror();
            return nullptr;
        }
        bool ok = t->Sym(t->ctx_new, "zmq_ctx_new") && t->Sym(t->socket, "zmq_socket") &&
                  t->Sym(t->connect, "zmq_connect") && t->Sym(t->send, "zmq_send") &&
                  t->Sym(t->recv, "zmq_recv") && t->Sym(t->close, "zmq_close") &&
                  t->Sym(t->ctx_term, "zmq_ctx_term") && t->Sym(t->setsockopt, "zmq_setsockopt") &&
                  t->Sym(t->strerror, "zmq_strerror") && t->Sym(t->errno_, "zmq_errno");
        if (!ok)
        {
            *error = "libzmq lacks a zmq_* entry point";
            return nullptr;
        }
        t->m_ctx = t->ctx_new();
        t->m_sock = t->socket(t->m_ctx, 3 /* ZMQ_REQ */);
        int linger = 0;
        t->setsockopt(t->m_sock, 17 /* ZMQ_LINGER */, &linger, sizeof(linger));
        if (t->connect(t->m_sock, endpoint.c_str()) != 0)
        {
            *error = std::string("zmq_connect(") + endpoint + "): " + t->strerror(t->errno_());
            return nullptr;
        }
        return t;
    }

    ~ZmqTransport() override
    {
        if (m_sock != nullptr)
        {
            close(m_sock);
        }
        if (m_ctx != nullptr)
        {
            ctx_term(m_ctx);
        }
    }

  protected:
    Status Exchange(const agent::Request& req, agent::Reply& rep) override
    {
        if (send(m_sock, &req, sizeof(req), 0) != int(sizeof(req)))
        {
            return Fail(Status::PeerGone, "System", std::string("zmq_send: ") + strerror(errno_()));
        }
        int n = recv(m_sock, &rep, sizeof(rep), 0);
        if (n != int(sizeof(rep)))
        {
            return Fail(Status::Invalid, "BadMessage",
                        n < 0 ? std::string("zmq_recv: ") + strerror(errno_())
                              : "reply of " + std::to_string(n) + " bytes");
        }
        return Status::Ok;
    }

  private:
    ZmqTransport() = default;

    template <class F>
    bool Sym(F& fn, const char* name)
    {
        fn = reinterpret_cast<F>(dlsym(m_lib, name));
        return fn != nullptr;
    }

    void* m_lib{nullptr};
    void* m_ctx{nullptr};
    void* m_sock{nullptr};
    void* (*ctx_new)(){nullptr};
    void* (*socket)(void*, int){nullptr};
    int (*connect)(void*, const char*){nullptr};
    int (*send)(void*, const void*, size_t, int){nullptr};
    int (*recv)(void*, void*, size_t, int){nullptr};
    int (*close)(void*){nullptr};
    int (*ctx_term)(void*){nullptr};
    int (*setsockopt)(void*, int, const void*, size_t){nullptr};
    const char* (*strerror)(int){nullptr};
    int (*errno_)(){nullptr};
};

/// Unix-domain stream socket; messages have fixed sizes, so no framing is needed.
class UdsTransport : public ByteTransport
{
  public:
    static std::unique_ptr<UdsTransport> Open(const std::string& path, std::string* error)
    {
        auto t = std::unique_ptr<UdsTransport>(new UdsTransport);
        t->m_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path.size() >= sizeof(addr.sun_path))
        {
            *error = "socket path too long: " + path;
            return nullptr;
        }
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        if (t->m_fd < 0 || ::connect(t->m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
        {
            *error = "connect(" + path + "): " + std::strerror(errno);
            return nullptr;
        }
        return t;
    }

    ~UdsTransport() override
    {
        if (m_fd >= 0)
        {
            ::close(m_fd);
        }
    }

  protected:
    Status Exchange(const agent::Request& req, agent::Reply& rep) override
    {
        const char* out = reinterpret_cast<const char*>(&req);
        for (size_t done = 0; done < sizeof(req);)
        {
            ssize_t n = ::send(m_fd, out + done, sizeof(req) - done, MSG_NOSIGNAL);
            if (n <= 0)
            {
                if (n < 0 && errno == EINTR)
                {
                    continue;
                }
                return Fail(Status::PeerGone, "PeerDied", std::string("send: ") + std::strerror(errno));
            }
            done += size_t(n);
        }
        char* in = reinterpret_cast<char*>(&rep);
        for (size_t done = 0; done < sizeof(rep);)
        {
            ssize_t n = ::recv(m_fd, in + done, sizeof(rep) - done, 0);
            if (n <= 0)
            {
                if (n < 0 && errno == EINTR)
                {
                    continue;
                }
                return Fail(Status::PeerGone, "PeerDied", "the agent closed the socket");
            }
            done += size_t(n);
        }
        return Status::Ok;
    }

  private:
    UdsTransport() = default;
    int m_fd{-1};
};

// ------------------------------------------------------------------ modes

int
RunClient(const Args& args)
{
    const std::string transport = args.Get("transport", "shm");
    std::unique_ptr<Transport> t;
    std::string error;
    if (transport == "shm")
    {
        t = std::make_unique<ShmTransport>(AttachOrDie(args.Get("channel"), args));
    }
    else if (transport == "zmq")
    {
        t = ZmqTransport::Open(args.Get("libzmq"), args.Get("endpoint"), &error);
    }
    else if (transport == "uds")
    {
        t = UdsTransport::Open(args.Get("endpoint"), &error);
    }
    else
    {
        error = "unknown --transport=" + transport;
    }
    if (!t)
    {
        Line("error").Add("message", error).Print();
        return 2;
    }
    Line("ready").Add("pid", int64_t(getpid())).Add("transport", transport).Print();

    const uint64_t rounds = uint64_t(args.Num("rounds", 1000));
    const uint64_t warmup = uint64_t(args.Num("warmup", 0));
    const double timeout = args.Num("timeout", 10.0);
    const double thinkMs = args.Num("think-ms", 0.0);
    const uint32_t packets = uint32_t(args.Num("packets", agent::kMaxPackets));
    const uint32_t tag = uint32_t(args.Num("tag", 0));
    const bool verify = args.Has("verify");
    const bool stopOnTimeout = args.Has("stop-on-timeout");

    auto req = std::make_unique<agent::Request>();
    auto rep = std::make_unique<agent::Reply>();
    std::memset(req.get(), 0, sizeof(*req));
    std::vector<int64_t> rtt;
    rtt.reserve(rounds);
    uint64_t ok = 0;
    uint64_t timeouts = 0;
    uint64_t invalid = 0;
    uint64_t mismatches = 0;
    Status last = Status::Ok;
    std::string lastMessage;
    int64_t wall0 = 0;
    int64_t cpu0 = 0;
    for (uint64_t round = 0; round < warmup + rounds; ++round)
    {
        if (round == warmup)
        {
            wall0 = Now();
            cpu0 = Now(CLOCK_PROCESS_CPUTIME_ID);
        }
        SleepMs(thinkMs); // the simulation's work between two epochs
        FillRequest(*req, round, packets, tag);
        const int64_t t0 = Now();
        Status s = t->Call(*req, *rep, timeout);
        const int64_t t1 = Now();
        if (round >= warmup)
        {
            rtt.push_back(t1 - t0);
        }
        last = s;
        if (s == Status::Ok)
        {
            ++ok;
            if (verify && (rep->p_l_mark != ExpectedPLMark(round, tag) ||
                           rep->action_count != req->packet_count))
            {
                ++mismatches;
                Line("mismatch")
                    .Add("round", round)
                    .Add("p_l_mark", rep->p_l_mark)
                    .Add("expected", ExpectedPLMark(round, tag))
                    .Add("action_count", uint64_t(rep->action_count))
                    .Print();
            }
            continue;
        }
        lastMessage = t->LastError();
        Line(s == Status::Timeout ? "timeout" : s == Status::PeerGone ? "peer_gone" : "invalid")
            .Add("round", round)
            .Add("status", AgentChannel::StatusName(s))
            .Add("error", t->ErrorKind())
            .Add("message", lastMessage)
            .Add("elapsed_s", double(t1 - t0) * 1e-9)
            .Print();
        if (s == Status::Timeout)
        {
            ++timeouts;
            if (stopOnTimeout)
            {
                break;
            }
        }
        else if (s == Status::PeerGone)
        {
            break;
        }
        else
        {
            ++invalid;
        }
    }
    const double wall = double(Now() - wall0) * 1e-9;
    const double cpu = double(Now(CLOCK_PROCESS_CPUTIME_ID) - cpu0) * 1e-9;
    std::vector<int64_t> sorted = rtt;
    std::sort(sorted.begin(), sorted.end());
    auto pct = [&](double q) {
        if (sorted.empty())
        {
            return 0.0;
        }
        size_t i = std::min(sorted.size() - 1, size_t(q * double(sorted.size() - 1) + 0.5));
        return double(sorted[i]) * 1e-3;
    };
    double mean = 0;
    for (int64_t v : rtt)
    {
        mean += double(v) * 1e-3;
    }
    mean = rtt.empty() ? 0.0 : mean / double(rtt.size());
    Line("done")
        .Add("transport", transport)
        .Add("rounds", uint64_t(rtt.size()))
        .Add("ok", ok)
        .Add("timeouts", timeouts)
        .Add("invalid", invalid)
        .Add("mismatches", mismatches)
        .Add("status", AgentChannel::StatusName(last))
        .Add("message", lastMessage)
        .Add("wall_s", wall)
        .Add("cpu_s", cpu)
        .Add("rtt_p50_us", pct(0.50))
        .Add("rtt_p99_us", pct(0.99))
        .Add("rtt_mean_us", mean)
        .Add("msgs_per_s", wall > 0 ? double(rtt.size()) / wall : 0.0)
        .Add("request_bytes", uint64_t(sizeof(agent::Request)))
        .Add("reply_bytes", uint64_t(sizeof(agent::Reply)))
        .Print();
    if (mismatches != 0)
    {
        return 5;
    }
    return ok == warmup + rounds ? 0 : ExitFor(last == Status::Ok ? Status::Timeout : last);
}

int
RunRelay(const Args& args)
{
    auto a = AttachOrDie(args.Get("channel"), args);  // the test is the client here
    auto b = AttachOrDie(args.Get("channel2"), args); // the test is the server here
    Line("ready").Add("pid", int64_t(getpid())).Print();
    const double timeout = args.Num("timeout", 10.0);
    auto req = std::make_unique<agent::Request>();
    auto rep = std::make_unique<agent::Reply>();
    for (uint64_t n = 0;; ++n)
    {
        Status s = a->WaitRequest(timeout);
        if (s == Status::PeerGone)
        {
            Line("done").Add("relayed", n).Print();
            return 0;
        }
        if (s != Status::Ok)
        {
            ReportFailure("a_request", *a, s, n);
            if (s != Status::Invalid)
            {
                return ExitFor(s);
            }
            std::memset(&a->ReplySlot(), 0, sizeof(agent::Reply));
            a->ReplySlot().status = agent::kReplyError;
            a->PostReply();
            continue;
        }
        *req = a->RequestSlot(); // copy out, forward on the other channel
        s = b->Call(*req, *rep, timeout);
        if (s != Status::Ok)
        {
            ReportFailure("b_call", *b, s, n);
            std::memset(&a->ReplySlot(), 0, sizeof(agent::Reply));
            a->ReplySlot().status = agent::kReplyError;
            a->PostReply();
            if (s == Status::PeerGone || s == Status::Timeout)
            {
                return ExitFor(s);
            }
            continue;
        }
        a->ReplySlot() = *rep; // seq is rewritten by PostReply
        s = a->PostReply();
        if (s != Status::Ok)
        {
            ReportFailure("a_reply", *a, s, n);
            return ExitFor(s);
        }
    }
}

int
RunIdle(const Args& args)
{
    auto chan = AttachOrDie(args.Get("channel"), args);
    Line("ready").Add("pid", int64_t(getpid())).Add("peer_pid", int64_t(chan->PeerPid())).Print();
    const int64_t end = Now() + int64_t(args.Num("duration", 60.0) * 1e9);
    while (Now() < end)
    {
        SleepMs(20);
        if (!AgentChannel::ProcessAlive(chan->PeerPid(), 0))
        {
            Line("peer_gone").Print();
            return 3;
        }
    }
    return 0;
}

int
RunBad(const Args& args)
{
    auto chan = AttachOrDie(args.Get("channel"), args);
    Line("ready").Add("pid", int64_t(getpid())).Print();
    const std::string kind = args.Get("bad", "packets");
    agent::Request& r = chan->RequestSlot();
    std::memset(&r, 0, sizeof(r));
    FillRequest(r, 0, 4, 0);
    if (kind == "packets")
    {
        r.packet_count = agent::kMaxPackets + 1;
    }
    else if (kind == "series")
    {
        r.series_count = agent::kMaxSeries + 1;
    }
    else if (kind == "window")
    {
        r.window_len = agent::kWindow + 1;
    }
    else if (kind == "scalars")
    {
        r.scalar_count = 1000000;
    }
    else if (kind == "rewards")
    {
        r.reward_count = 0xffffffffu;
    }
    else if (kind == "nan")
    {
        r.series[agent::kSeriesQueueBytes][3] = std::nan("");
    }
    else if (kind == "inf")
    {
        r.scalars[agent::kScalarPL] = INFINITY;
    }
    else if (kind == "negsize")
    {
        r.packets[1].size_bytes = -5;
    }
    else if (kind == "class")
    {
        r.packets[2].traffic_class = 7;
    }
    else if (kind == "ecn")
    {
        r.packets[0].ecn = 4;
    }
    else if (kind == "negtime")
    {
        r.header.sim_time_ns = -1;
    }
    else
    {
        Line("error").Add("message", "unknown --bad=" + kind).Print();
        return 2;
    }
    Status s = chan->PostRequest(false);
    if (s == Status::Ok)
    {
        s = chan->WaitReply(args.Num("timeout", 5.0));
    }
    Line("reply")
        .Add("status", AgentChannel::StatusName(s))
        .Add("error", AgentChannel::ErrorName(chan->LastErrorKind()))
        .Add("message", chan->LastError())
        .Print();
    return ExitFor(s);
}

int
RunCreate(const Args& args)
{
    AgentChannel::Options options = ChannelOptions(args);
    AgentChannel::Opened opened = AgentChannel::Create(options);
    if (!opened.channel)
    {
        Line("error").Add("message", opened.message).Print();
        return 5;
    }
    auto chan = std::move(opened.channel);
    Line("created").Add("name", chan->Name()).Add("pid", int64_t(getpid())).Print();
    const double timeout = args.Num("timeout", 30.0);
    for (uint64_t n = 0;; ++n)
    {
        Status s = chan->WaitRequest(timeout);
        if (s == Status::PeerGone)
        {
            Line("done").Add("served", n).Print();
            return 0;
        }
        if (s != Status::Ok)
        {
            ReportFailure("request", *chan, s, n);
            if (s != Status::Invalid)
            {
                return ExitFor(s);
            }
            std::memset(&chan->ReplySlot(), 0, sizeof(agent::Reply));
            chan->ReplySlot().status = agent::kReplyError;
            chan->PostReply();
            continue;
        }
        const agent::Request& r = chan->RequestSlot();
        agent::Reply& rep = chan->ReplySlot();
        rep.status = agent::kReplyOk;
        rep.action_count = r.packet_count;
        for (uint32_t i = 0; i < r.packet_count; ++i)
        {
            rep.actions[i].uid = r.packets[i].uid;
            rep.actions[i].action = agent::kActionForward;
        }
        rep.p_l_mark = ExpectedPLMark(r.header.epoch, r.header.flags);
        rep.p_c_drop = 0.0;
        rep.p_c_mark = 0.0;
        chan->PostReply();
    }
}

} // namespace

int
main(int argc, char* argv[])
{
    Args args;
    for (int i = 1; i < argc; ++i)
    {
        std::string a = argv[i];
        if (a.rfind("--", 0) != 0)
        {
            std::fprintf(stderr, "usage: %s --mode=client|relay|idle|bad|create [--key=value...]\n",
                         argv[0]);
            return 2;
        }
        size_t eq = a.find('=');
        args.values[a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2)] =
            eq == std::string::npos ? "1" : a.substr(eq + 1);
    }
    const std::string mode = args.Get("mode", "client");
    if (mode == "client")
    {
        return RunClient(args);
    }
    if (mode == "relay")
    {
        return RunRelay(args);
    }
    if (mode == "idle")
    {
        return RunIdle(args);
    }
    if (mode == "bad")
    {
        return RunBad(args);
    }
    if (mode == "create")
    {
        return RunCreate(args);
    }
    std::fprintf(stderr, "unknown --mode=%s\n", mode.c_str());
    return 2;
}
