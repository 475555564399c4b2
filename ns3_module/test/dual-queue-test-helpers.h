/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef DUAL_QUEUE_TEST_HELPERS_H
#define DUAL_QUEUE_TEST_HELPERS_H

#include "ns3/ipv4-header.h"
#include "ns3/ipv4-queue-disc-item.h"
#include "ns3/packet.h"
#include "ns3/queue-disc.h"
#include "ns3/queue-size.h"
#include "ns3/simulator.h"

#include <string>

/**
 * \ingroup aqm-llm-tests
 * \brief Pieces shared by the dual-queue test suites (DualPI2 and L4S-LLM queue discs).
 */
namespace ns3::dualq_test
{

constexpr uint32_t PAYLOAD = 980; //!< + 20 B IPv4 header = 1000 B per item

/// \return an IPv4 queue disc item of 1000 B with ECN field \p ecn
inline Ptr<Ipv4QueueDiscItem>
MakeItem(Ipv4Header::EcnType ecn)
{
    Ipv4Header h;
    h.SetEcn(ecn);
    h.SetPayloadSize(PAYLOAD);
    return Create<Ipv4QueueDiscItem>(Create<Packet>(PAYLOAD), Address(), 0, h);
}

/// \return "packets" or "bytes"
inline std::string
ModeName(QueueSizeUnit unit)
{
    return unit == QueueSizeUnit::PACKETS ? "packets" : "bytes";
}

/// Schedule the enqueue of \p n items with ECN \p ecn into \p q at \p t.
inline void
EnqueueAt(Ptr<QueueDisc> q, Time t, uint32_t n, Ipv4Header::EcnType ecn)
{
    for (uint32_t i = 0; i < n; ++i)
    {
        Simulator::Schedule(t, [q, ecn]() { q->Enqueue(MakeItem(ecn)); });
    }
}

/// Schedule dequeuing everything from \p q at \p t; \p forwarded counts the packets returned.
inline void
DrainAt(Ptr<QueueDisc> q, Time t, uint32_t* forwarded)
{
    Simulator::Schedule(t, [q, forwarded]() {
        while (q->Dequeue())
        {
            ++*forwarded;
        }
    });
}

} // namespace ns3::dualq_test

#endif /* DUAL_QUEUE_TEST_HELPERS_H */
