/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "aqm-queue-disc-registry.h"

#include "ns3/abort.h"
#include "ns3/boolean.h"
#include "ns3/data-rate.h"
#include "ns3/double.h"
#include "ns3/dual-pi2-queue-disc.h"
#include "ns3/l4s-llm-queue-disc.h"
#include "ns3/log.h"
#include "ns3/net-device.h"
#include "ns3/nstime.h"
#include "ns3/queue-size.h"
#include "ns3/string.h"
#include "ns3/uinteger.h"
#include "ns3/traffic-control-layer.h"
#include "ns3/uinteger.h"

#include <cctype>
#include <sstream>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("AqmQueueDiscRegistry");

const std::vector<AqmQueueDiscSpec>&
AqmQueueDiscRegistry::Specs()
{
    static const std::vector<AqmQueueDiscSpec> specs = {
        {"fifo", "ns3::FifoQueueDisc", "tail drop FIFO"},
        {"red", "ns3::RedQueueDisc", "adaptive RED (ARED), ECN"},
        {"codel", "ns3::CoDelQueueDisc", "CoDel, ECN"},
        {"fq-codel", "ns3::FqCoDelQueueDisc", "FQ-CoDel, ECN"},
        {"fq-codel-l4s", "ns3::FqCoDelQueueDisc", "FQ-CoDel, ECN, ECT(1) marked at a 1 ms step"},
        {"pie", "ns3::PieQueueDisc", "PIE (RFC 8033), ECN"},
        {"pie-l4s", "ns3::PieQueueDisc", "PIE, ECN, ECT(1) marked at a 1 ms step"},
        {"fq-pie", "ns3::FqPieQueueDisc", "FQ-PIE, ECN"},
        {"cobalt", "ns3::CobaltQueueDisc", "COBALT (CoDel + BLUE), ECN"},
        {"fq-cobalt", "ns3::FqCobaltQueueDisc", "FQ-COBALT, ECN"},
        {"dualpi2", "ns3::DualPi2QueueDisc", "DualQ Coupled PI2 (RFC 9332)", true},
        {"l4s-llm", "ns3::L4sLlmQueueDisc", "LLM-driven dual queue (aqm-llm)", true},
    };
    return specs;
}

std::vector<std::string>
AqmQueueDiscRegistry::Names()
{
    std::vector<std::string> names;
    for (const auto& spec : Specs())
    {
        // Names whose TypeId is not (yet) part of this build are not offered.
        TypeId tid;
        if (TypeId::LookupByNameFailSafe(spec.typeId, &tid))
        {
            names.push_back(spec.name);
        }
    }
    return names;
}

bool
AqmQueueDiscRegistry::HasDrawStream(const std::string& name)
{
    return IsKnown(name) && Get(name).drawStream;
}

std::vector<std::string>
AqmQueueDiscRegistry::DrawStreamNames()
{
    std::vector<std::string> names;
    for (const auto& n : Names())
    {
        if (HasDrawStream(n))
        {
            names.push_back(n);
        }
    }
    return names;
}

bool
AqmQueueDiscRegistry::IsKnown(const std::string& name)
{
    for (const auto& n : Names())
    {
        if (n == name)
        {
            return true;
        }
    }
    return false;
}

const AqmQueueDiscSpec&
AqmQueueDiscRegistry::Get(const std::string& name)
{
    for (const auto& spec : Specs())
    {
        if (spec.name == name && IsKnown(name))
        {
            return spec;
        }
    }
    std::ostringstream allowed;
    for (const auto& n : Names())
    {
        allowed << " " << n;
    }
    NS_ABORT_MSG("unknown queue disc '" << name << "'; allowed:" << allowed.str());
}

void
AqmQueueDiscRegistry::Configure(Ptr<QueueDisc> qdisc,
                                const std::string& name,
                                const AqmQueueDiscOptions& options)
{
    const auto& spec = Get(name);
    NS_LOG_FUNCTION(qdisc << name);
    qdisc->SetAttribute("MaxSize", QueueSizeValue(options.limit));
    if (options.drawStream >= 0)
    {
        NS_ABORT_MSG_UNLESS(HasDrawStream(name), "a draw stream does not apply to " << name);
        if (auto dualPi2 = DynamicCast<DualPi2QueueDisc>(qdisc))
        {
            dualPi2->AssignStreams(options.drawStream);
        }
        else
        {
            auto llm = DynamicCast<L4sLlmQueueDisc>(qdisc);
            NS_ASSERT_MSG(llm, "HasDrawStream names a queue disc with no stream to assign");
            llm->AssignStreams(options.drawStream);
        }
    }
    if (spec.typeId == "ns3::FifoQueueDisc")
    {
        return;
    }
    if (spec.typeId == "ns3::RedQueueDisc")
    {
        // Adaptive RED derives its thresholds and weight from the link.
        qdisc->SetAttribute("ARED", BooleanValue(true));
        qdisc->SetAttribute("MeanPktSize", UintegerValue(1500));
        qdisc->SetAttribute("LinkBandwidth", DataRateValue(options.linkRate));
        qdisc->SetAttribute("LinkDelay", TimeValue(options.linkDelay));
    }
    qdisc->SetAttribute("UseEcn", BooleanValue(options.useEcn));
    if (spec.typeId == "ns3::DualPi2QueueDisc")
    {
        qdisc->SetAttribute("ExcludeBlockedTime", BooleanValue(options.excludeBlockedTime));
    }
    if (spec.typeId == "ns3::L4sLlmQueueDisc")
    {
        auto word = [](const std::string& w, const char* what) {
            NS_ABORT_MSG_IF(w.empty(), "empty " << what);
            std::string s = w;
            s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
            return StringValue(s); // "agent" -> "Agent" (the enum's names)
        };
        qdisc->SetAttribute("ExcludeBlockedTime", BooleanValue(options.excludeBlockedTime));
        qdisc->SetAttribute("LinkRate", DataRateValue(options.linkRate));
        qdisc->SetAttribute("ChannelName", StringValue(options.agentChannel));
        qdisc->SetAttribute("DecisionInterval", TimeValue(options.decisionInterval));
        qdisc->SetAttribute("DecisionDelay", TimeValue(options.decisionDelay));
        qdisc->SetAttribute("BatchSize", UintegerValue(options.batchSize));
        qdisc->SetAttribute("AgentTimeout", TimeValue(options.agentTimeout));
        qdisc->SetAttribute("Mode", word(options.llmMode, "llm mode"));
        qdisc->SetAttribute("OverloadRule", word(options.llmOverload, "llm overload rule"));
        qdisc->SetAttribute("LSojournLimit", TimeValue(options.llmLSojournLimit));
        qdisc->SetAttribute("AgentLDrop", word(options.llmLAgentDrop, "llm L agent drop rule"));
        qdisc->SetAttribute("AgentForward",
                            word(options.llmAgentForward, "llm agent forward rule"));
        qdisc->SetAttribute("AgentDrop", word(options.llmAgentDrop, "llm agent drop rule"));
        qdisc->SetAttribute("ClassicDecider", word(options.llmClassic, "llm classic decider"));
        qdisc->SetAttribute("Teacher", StringValue(options.teacher));
        qdisc->SetAttribute("RecordActor", word(options.recordActor, "record actor"));
        qdisc->SetAttribute("RecordPath", StringValue(options.recordPath));
        qdisc->SetAttribute("ExplorationEpsilon", DoubleValue(options.explorationEpsilon));
    }
    if (name == "fq-codel-l4s" || name == "pie-l4s")
    {
        qdisc->SetAttribute("UseEcn", BooleanValue(true));
        qdisc->SetAttribute("UseL4s", BooleanValue(true));
        qdisc->SetAttribute("CeThreshold", TimeValue(options.l4sThreshold));
    }
}

namespace
{
/// Create the root queue disc through TrafficControlHelper so that device queue
/// wiring (NetDeviceQueueInterface, wake callbacks) is done the standard way.
Ptr<QueueDisc>
InstallRoot(TrafficControlHelper& tch, Ptr<NetDevice> device)
{
    Ptr<TrafficControlLayer> tc = device->GetNode()->GetObject<TrafficControlLayer>();
    NS_ABORT_MSG_IF(!tc, "node has no traffic control layer (install the internet stack first)");
    if (tc->GetRootQueueDiscOnDevice(device))
    {
        tc->DeleteRootQueueDiscOnDevice(device);
    }
    QueueDiscContainer qdiscs = tch.Install(device);
    return qdiscs.Get(0);
}
} // namespace

Ptr<QueueDisc>
AqmQueueDiscRegistry::Install(Ptr<NetDevice> device,
                              const std::string& name,
                              const AqmQueueDiscOptions& options)
{
    const auto& spec = Get(name);
    TrafficControlHelper tch;
    tch.SetRootQueueDisc(spec.typeId);
    Ptr<QueueDisc> qdisc = InstallRoot(tch, device);
    Configure(qdisc, name, options);
    return qdisc;
}

Ptr<QueueDisc>
AqmQueueDiscRegistry::InstallMq(Ptr<NetDevice> device,
                                const std::string& name,
                                const AqmQueueDiscOptions& options,
                                uint32_t childIndex)
{
    const auto& spec = Get(name);
    TrafficControlHelper tch;
    uint16_t handle = tch.SetRootQueueDisc("ns3::MqQueueDisc");
    // One class per transmit queue; Wi-Fi has four (AC_BE, AC_BK, AC_VI, AC_VO).
    const uint16_t nQueues = 4;
    auto classes = tch.AddQueueDiscClasses(handle, nQueues, "ns3::QueueDiscClass");
    tch.AddChildQueueDiscs(handle, classes, spec.typeId);
    Ptr<QueueDisc> root = InstallRoot(tch, device);
    NS_ABORT_MSG_IF(childIndex >= root->GetNQueueDiscClasses(),
                    "child index " << childIndex << " out of range");
    for (std::size_t i = 0; i < root->GetNQueueDiscClasses(); ++i)
    {
        AqmQueueDiscOptions childOptions = options;
        if (i != childIndex)
        {
            // l4s-llm: one agent channel and one record file serve the main child only;
            // the other access classes run the acting teacher on their own.
            childOptions.agentChannel.clear();
            childOptions.recordPath.clear();
            childOptions.llmMode = "teacher";
            childOptions.drawStream = -1; // a fixed stream serves the main child alone
        }
        Configure(root->GetQueueDiscClass(i)->GetQueueDisc(), name, childOptions);
    }
    return root->GetQueueDiscClass(childIndex)->GetQueueDisc();
}

} // namespace ns3
