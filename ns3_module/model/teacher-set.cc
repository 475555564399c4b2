/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "teacher-set.h"

#include "ns3/abort.h"
#include "ns3/random-variable-stream.h"

#include <algorithm>

namespace ns3
{

bool
TeacherSet::Check(const std::string& acting,
                  const std::vector<std::string>& shadow,
                  std::string* error)
{
    if (!acting.empty() && !AqmTeacher::Create(acting, error))
    {
        *error = "Teacher: " + *error;
        return false;
    }
    for (const auto& name : shadow)
    {
        if (!AqmTeacher::Create(name, error))
        {
            *error = "Teachers: " + *error;
            return false;
        }
    }
    return true;
}

void
TeacherSet::Configure(std::vector<std::string> shadow, const std::string& acting)
{
    m_teachers.clear();
    m_acting = -1;
    if (!acting.empty())
    {
        auto it = std::find(shadow.begin(), shadow.end(), acting);
        if (it == shadow.end())
        {
            shadow.push_back(acting);
            it = shadow.end() - 1;
        }
        m_acting = int32_t(it - shadow.begin());
    }
    for (const auto& name : shadow)
    {
        std::string error;
        auto teacher = AqmTeacher::Create(name, &error);
        NS_ABORT_MSG_IF(!teacher, "L4sLlmQueueDisc: " << error);
        m_teachers.push_back(std::move(teacher));
    }
    m_replies.assign(m_teachers.size(), agent::Reply());
}

void
TeacherSet::Clear()
{
    m_teachers.clear();
    m_replies.clear();
    m_acting = -1;
}

void
TeacherSet::DecideAll(const agent::Request& request, double intervalSeconds)
{
    for (std::size_t i = 0; i < m_teachers.size(); ++i)
    {
        m_teachers[i]->Decide(request, intervalSeconds, m_replies[i]);
    }
}

const agent::Reply&
TeacherSet::ActingReply(double epsilon, Ptr<UniformRandomVariable> rv, bool& explored)
{
    NS_ABORT_MSG_IF(m_acting < 0, "TeacherSet: no teacher acts");
    explored = false;
    if (epsilon <= 0)
    {
        return m_replies[m_acting];
    }
    m_explored = m_replies[m_acting];
    const uint32_t n = std::min(m_explored.action_count, agent::kMaxPackets);
    for (uint32_t i = 0; i < n; ++i)
    {
        if (rv->GetValue() < epsilon)
        {
            m_explored.actions[i].action = uint8_t(rv->GetInteger(0, agent::kActionCount - 1));
        }
    }
    explored = true;
    return m_explored;
}

int32_t
TeacherSet::GetActingIndex() const
{
    return m_acting;
}

std::string
TeacherSet::GetActingLabel() const
{
    return m_acting >= 0 ? "teacher:" + m_teachers[m_acting]->GetName() : std::string();
}

std::vector<std::string>
TeacherSet::GetNames() const
{
    std::vector<std::string> names;
    for (const auto& t : m_teachers)
    {
        names.push_back(t->GetName());
    }
    return names;
}

const std::vector<agent::Reply>&
TeacherSet::GetReplies() const
{
    return m_replies;
}

std::size_t
TeacherSet::GetSize() const
{
    return m_teachers.size();
}

} // namespace ns3
