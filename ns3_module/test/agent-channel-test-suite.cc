/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
// suite: agent-channel
#include "ns3/agent-channel.h"
#include "ns3/test.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace ns3;
using Status = AgentChannel::Status;

namespace
{

AgentChannel::Options
TestOptions()
{
    AgentChannel::Options o;
    o.installSignalHandlers = false; // leave the test runner's signal handling alone
    return o;
}

/// A small valid request with `packets` descriptors; values depend on `epoch`.
void
FillRequest(agent::Request& r, uint64_t epoch, uint32_t packets)
{
    std::memset(&r, 0, sizeof(r));
    r.header.epoch = epoch;
    r.header.sim_time_ns = int64_t(epoch) * 16000000;
    r.series_count = agent::kSeriesDefined;
    r.window_len = agent::kWindow;
    for (uint32_t i = 0; i < agent::kSeriesDefined; ++i)
    {
        for (uint32_t j = 0; j < agent::kWindow; ++j)
        {
            r.series[i][j] = double(epoch + i + j);
        }
    }
    r.scalar_count = agent::kScalarDefined;
    r.packet_count = packets;
    for (uint32_t i = 0; i < packets; ++i)
    {
        r.packets[i].uid = epoch * 100 + i;
        r.packets[i].size_bytes = 1500;
        r.packets[i].ecn = 1;
    }
    r.reward_count = agent::kRewardDefined;
}

/// Child process: attach, then answer every request with action uid % 3 and
/// p_l_mark = epoch / 1000, after `delayMs`; exits when the parent closes.
[[noreturn]] void
ServeInChild(const std::string& name, int delayMs)
{
    auto opened = AgentChannel::Attach(name, TestOptions());
    if (!opened.channel)
    {
        _exit(10);
    }
    AgentChannel& chan = *opened.channel;
    for (;;)
    {
        Status s = chan.WaitRequest(10.0);
        if (s == Status::PeerGone)
        {
            _exit(0);
        }
        if (s != Status::Ok)
        {
            _exit(11);
        }
        if (delayMs > 0)
        {
            std::this_thread::sleep_for(std::chrono::milliseconds(delayMs));
        }
        const agent::Request& r = chan.RequestSlot();
        agent::Reply& rep = chan.ReplySlot();
        rep.status = agent::kReplyOk;
        rep.action_count = r.packet_count;
        for (uint32_t i = 0; i < r.packet_count; ++i)
        {
            rep.actions[i].uid = r.packets[i].uid;
            rep.actions[i].action = uint8_t(r.packets[i].uid % 3);
        }
        rep.p_l_mark = double(r.header.epoch % 1000) / 1000.0;
        rep.p_c_drop = 0.25;
        rep.p_c_mark = 0.5;
        if (chan.PostReply() != Status::Ok)
        {
            _exit(12);
        }
    }
}

int
WaitChild(pid_t pid)
{
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

double
Seconds(std::chrono::steady_clock::time_point since)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

} // namespace

/**
 * \ingroup aqm-llm-tests
 * \brief Validation: counts above capacity, NaN/infinite values, negative sizes, bad replies.
 */
class AgentChannelValidationTestCase : public TestCase
{
  public:
    AgentChannelValidationTestCase()
        : TestCase("Requests and replies are validated field by field")
    {
    }

  private:
    void DoRun() override
    {
        agent::Request r;
        FillRequest(r, 1, 4);
        std::string why;
        NS_TEST_ASSERT_MSG_EQ(AgentChannel::ValidateRequest(r, &why), true, why);

        agent::Request bad = r;
        bad.packet_count = 33;
        NS_TEST_ASSERT_MSG_EQ(AgentChannel::ValidateRequest(bad, &why), false, "count");
        NS_TEST_ASSERT_MSG_EQ(why, "packet_count = 33 exceeds capacity 32", "message");
        bad = r;
        bad.series[1][2] = std::nan("");
        NS_TEST_ASSERT_MSG_EQ(AgentChannel::ValidateRequest(bad, &why), false, "nan");
        NS_TEST_ASSERT_MSG_EQ(why, "series[1][2] (c_sojourn_s) is NaN", "message");
        bad = r;
        bad.packets[3].size_bytes = -1;
        NS_TEST_ASSERT_MSG_EQ(AgentChannel::ValidateRequest(bad, &why), false, "size");
        NS_TEST_ASSERT_MSG_EQ(why, "packets[3].size_bytes = -1 is negative", "message");
        bad = r;
        bad.packets[4].size_bytes = -1; // beyond packet_count: not looked at
        NS_TEST_ASSERT_MSG_EQ(AgentChannel::ValidateRequest(bad, &why), true, why);

        agent::Reply rep;
        std::memset(&rep, 0, sizeof(rep));
        rep.action_count = 2;
        rep.actions[0].uid = r.packets[0].uid;
        rep.actions[1].uid = r.packets[1].uid;
        NS_TEST_ASSERT_MSG_EQ(AgentChannel::ValidateReply(rep, &r, &why), true, why);
        rep.actions[1].uid = 999;
        NS_TEST_ASSERT_MSG_EQ(AgentChannel::ValidateReply(rep, &r, &why), false, "uid");
        rep.actions[1].uid = r.packets[1].uid;
        rep.p_c_drop = INFINITY;
        NS_TEST_ASSERT_MSG_EQ(AgentChannel::ValidateReply(rep, &r, &why), false, "inf");
        rep.p_c_drop = 0;
        rep.action_count = 5;
        NS_TEST_ASSERT_MSG_EQ(AgentChannel::ValidateReply(rep, &r, &why), false, "count");
        NS_TEST_ASSERT_MSG_EQ(why, "action_count = 5 exceeds the request's packet_count 4", "msg");
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief Lockstep round trips with a forked agent process.
 */
class AgentChannelRoundTripTestCase : public TestCase
{
  public:
    AgentChannelRoundTripTestCase()
        : TestCase("Round trips with a forked peer; the segment is private and goes away")
    {
    }

  private:
    void DoRun() override
    {
        auto opened = AgentChannel::Create(TestOptions());
        NS_TEST_ASSERT_MSG_EQ(bool(opened.channel), true, opened.message);
        AgentChannel& chan = *opened.channel;
        const std::string path = "/dev/shm" + chan.Name();
        struct stat st;
        NS_TEST_ASSERT_MSG_EQ(stat(path.c_str(), &st), 0, "segment exists");
        NS_TEST_ASSERT_MSG_EQ((st.st_mode & 0777), 0600u, "owner-only");
        // O_EXCL: the same name cannot be created twice.
        auto again = AgentChannel::Create(chan.Name(), TestOptions());
        NS_TEST_ASSERT_MSG_EQ(int(again.error), int(AgentChannel::Error::Busy), again.message);

        pid_t child = fork();
        if (child == 0)
        {
            ServeInChild(chan.Name(), 0);
        }
        chan.SetExpectedPeerPid(child);
        NS_TEST_ASSERT_MSG_EQ(int(chan.WaitAttached(5.0)), int(Status::Ok), chan.LastError());
        NS_TEST_ASSERT_MSG_EQ(chan.PeerPid(), child, "peer pid exchanged");
        NS_TEST_ASSERT_MSG_EQ(access(path.c_str(), F_OK), -1, "unlinked once attached");

        agent::Request req;
        agent::Reply rep;
        for (uint64_t epoch = 0; epoch < 200; ++epoch)
        {
            const uint32_t packets = uint32_t(epoch % (agent::kMaxPackets + 1));
            FillRequest(req, epoch, packets);
            Status s = chan.Call(req, rep, 5.0);
            NS_TEST_ASSERT_MSG_EQ(int(s), int(Status::Ok), chan.LastError());
            NS_TEST_ASSERT_MSG_EQ(rep.seq, epoch + 1, "seq echo");
            NS_TEST_ASSERT_MSG_EQ(rep.action_count, packets, "one action per descriptor");
            for (uint32_t i = 0; i < packets; ++i)
            {
                NS_TEST_ASSERT_MSG_EQ(rep.actions[i].uid, req.packets[i].uid, "uid");
                NS_TEST_ASSERT_MSG_EQ(uint32_t(rep.actions[i].action),
                                      uint32_t(req.packets[i].uid % 3), "action");
            }
            NS_TEST_ASSERT_MSG_EQ(rep.p_l_mark, double(epoch) / 1000.0, "p_l_mark");
            NS_TEST_ASSERT_MSG_EQ(rep.p_c_mark, 0.5, "p_c_mark");
        }
        // An invalid request is refused locally and never reaches the agent.
        FillRequest(req, 7, 2);
        req.scalars[0] = INFINITY;
        NS_TEST_ASSERT_MSG_EQ(int(chan.Call(req, rep, 1.0)), int(Status::Invalid), "invalid");
        NS_TEST_ASSERT_MSG_EQ(int(chan.LastErrorKind()), int(AgentChannel::Error::BadMessage),
                              chan.LastError());
        chan.Close();
        NS_TEST_ASSERT_MSG_EQ(WaitChild(child), 0, "the peer saw the close and exited");
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief A late agent: Timeout, then the late reply is discarded; a dead agent: PeerGone.
 */
class AgentChannelFailureTestCase : public TestCase
{
  public:
    AgentChannelFailureTestCase()
        : TestCase("Timeouts, late replies, and a peer that dies")
    {
    }

  private:
    void DoRun() override
    {
        {
            auto opened = AgentChannel::Create(TestOptions());
            AgentChannel& chan = *opened.channel;
            pid_t child = fork();
            if (child == 0)
            {
                ServeInChild(chan.Name(), 150); // answers after 150 ms
            }
            NS_TEST_ASSERT_MSG_EQ(int(chan.WaitAttached(5.0)), int(Status::Ok), chan.LastError());
            agent::Request req;
            agent::Reply rep;
            FillRequest(req, 1, 3);
            auto t0 = std::chrono::steady_clock::now();
            NS_TEST_ASSERT_MSG_EQ(int(chan.Call(req, rep, 0.05)), int(Status::Timeout), "late");
            double took = Seconds(t0);
            NS_TEST_ASSERT_MSG_EQ_TOL(took, 0.05, 0.04, "timeout honoured");
            FillRequest(req, 2, 3);
            NS_TEST_ASSERT_MSG_EQ(int(chan.Call(req, rep, 2.0)), int(Status::Ok), chan.LastError());
            NS_TEST_ASSERT_MSG_EQ(chan.StaleReplies(), 1u, "the late reply was discarded");
            NS_TEST_ASSERT_MSG_EQ(rep.p_l_mark, 0.002, "the reply is for epoch 2");
            chan.Close();
            NS_TEST_ASSERT_MSG_EQ(WaitChild(child), 0, "child exit");
        }
        {
            auto opened = AgentChannel::Create(TestOptions());
            AgentChannel& chan = *opened.channel;
            pid_t child = fork();
            if (child == 0)
            {
                auto mine = AgentChannel::Attach(chan.Name(), TestOptions());
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                _exit(mine.channel ? 0 : 10); // dies without closing (as a crash would)
            }
            NS_TEST_ASSERT_MSG_EQ(int(chan.WaitAttached(5.0)), int(Status::Ok), chan.LastError());
            agent::Request req;
            agent::Reply rep;
            FillRequest(req, 1, 1);
            auto t0 = std::chrono::steady_clock::now();
            Status s = chan.Call(req, rep, 30.0); // the child stays a zombie: still noticed
            double took = Seconds(t0);
            NS_TEST_ASSERT_MSG_EQ(int(s), int(Status::PeerGone), chan.LastError());
            NS_TEST_ASSERT_MSG_EQ(int(chan.LastErrorKind()), int(AgentChannel::Error::PeerDied),
                                  chan.LastError());
            NS_TEST_ASSERT_MSG_LT(took, 1.0, "noticed promptly");
            t0 = std::chrono::steady_clock::now();
            NS_TEST_ASSERT_MSG_EQ(int(chan.Call(req, rep, 30.0)), int(Status::PeerGone), "sticky");
            NS_TEST_ASSERT_MSG_LT(Seconds(t0), 0.01, "no waiting once the peer is gone");
            NS_TEST_ASSERT_MSG_EQ(WaitChild(child), 0, "child exit");
        }
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief Attach errors: no such segment, different protocol version.
 */
class AgentChannelMismatchTestCase : public TestCase
{
  public:
    AgentChannelMismatchTestCase()
        : TestCase("Attach refuses a missing segment and a different protocol version")
    {
    }

  private:
    void DoRun() override
    {
        auto missing = AgentChannel::Attach("/aqm-llm-1-0000000000000000", TestOptions());
        NS_TEST_ASSERT_MSG_EQ(int(missing.error), int(AgentChannel::Error::NotFound),
                              missing.message);

        auto opened = AgentChannel::Create(TestOptions());
        AgentChannel& chan = *opened.channel;
        // Pretend the creator speaks version 99.
        int fd = shm_open(chan.Name().c_str(), O_RDWR, 0);
        NS_TEST_ASSERT_MSG_GT_OR_EQ(fd, 0, "open");
        void* p = mmap(nullptr, agent::kFrozenPrefixSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        static_cast<agent::SegmentHeader*>(p)->protocol_version = 99;
        munmap(p, agent::kFrozenPrefixSize);
        close(fd);

        auto attached = AgentChannel::Attach(chan.Name(), TestOptions());
        NS_TEST_ASSERT_MSG_EQ(bool(attached.channel), false, "refused");
        NS_TEST_ASSERT_MSG_EQ(int(attached.error), int(AgentChannel::Error::ProtocolMismatch),
                              attached.message);
        NS_TEST_ASSERT_MSG_NE(attached.message.find("v99"), std::string::npos, attached.message);
        // The creator learns it too, at once.
        NS_TEST_ASSERT_MSG_EQ(int(chan.WaitAttached(1.0)), int(Status::Invalid), "mismatch");
        NS_TEST_ASSERT_MSG_EQ(int(chan.LastErrorKind()),
                              int(AgentChannel::Error::ProtocolMismatch), chan.LastError());
        const std::string path = "/dev/shm" + chan.Name();
        chan.Close();
        NS_TEST_ASSERT_MSG_EQ(access(path.c_str(), F_OK), -1, "removed on close");
    }
};

/**
 * \ingroup aqm-llm-tests
 * \brief Test suite for AgentChannel.
 */
class AgentChannelTestSuite : public TestSuite
{
  public:
    AgentChannelTestSuite()
        : TestSuite("agent-channel", Type::UNIT)
    {
        AddTestCase(new AgentChannelValidationTestCase(), TestCase::Duration::QUICK);
        AddTestCase(new AgentChannelRoundTripTestCase(), TestCase::Duration::QUICK);
        AddTestCase(new AgentChannelFailureTestCase(), TestCase::Duration::QUICK);
        AddTestCase(new AgentChannelMismatchTestCase(), TestCase::Duration::QUICK);
    }
};

static AgentChannelTestSuite g_agentChannelTestSuite; //!< static instance
