/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#ifndef AQM_LLM_TEACHER_SET_H
#define AQM_LLM_TEACHER_SET_H

#include "agent-messages.h"
#include "aqm-teachers.h"

#include "ns3/ptr.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ns3
{

class UniformRandomVariable;

/**
 * \ingroup aqm-llm
 * \brief The teachers an L4sLlmQueueDisc runs in one run: the shadow list (record mode) with
 * the acting teacher added if missing, every teacher's reply to each epoch's request, and the
 * epsilon exploration of the acting teacher's per-packet actions (experience collection).
 */
class TeacherSet
{
  public:
    /**
     * \brief Check names before a run.
     * \param acting the acting teacher's name (empty: none acts)
     * \param shadow the shadow teachers' names
     * \param error set to a message naming the bad name and what is allowed
     * \return whether every name is a teacher
     */
    static bool Check(const std::string& acting,
                      const std::vector<std::string>& shadow,
                      std::string* error);

    /**
     * \brief Create the teachers (aborts on a name Check refuses).
     * \param shadow the teachers that run in shadow, in record order
     * \param acting the acting teacher (appended if not among them; empty: none acts)
     */
    void Configure(std::vector<std::string> shadow, const std::string& acting);

    /// Forget the teachers.
    void Clear();

    /**
     * \brief Every teacher decides the epoch.
     * \param request the epoch's request
     * \param intervalSeconds the decision interval
     */
    void DecideAll(const agent::Request& request, double intervalSeconds);

    /**
     * \brief The acting teacher's reply, its per-packet actions each replaced, with probability
     * \p epsilon, by one drawn uniformly from forward/drop/mark.
     * \param epsilon the exploration probability (0: the reply as it is, no draw)
     * \param rv the exploration's random stream
     * \param explored set to whether exploration ran
     * \return the reply to apply
     */
    const agent::Reply& ActingReply(double epsilon, Ptr<UniformRandomVariable> rv, bool& explored);

    /// \return the index of the acting teacher (-1: none acts)
    int32_t GetActingIndex() const;
    /// \return "teacher:NAME" of the acting teacher, or "" if none acts
    std::string GetActingLabel() const;
    /// \return the names, in record order
    std::vector<std::string> GetNames() const;
    /// \return this epoch's replies, in record order
    const std::vector<agent::Reply>& GetReplies() const;
    /// \return the number of teachers
    std::size_t GetSize() const;

  private:
    std::vector<std::unique_ptr<AqmTeacher>> m_teachers; //!< running teachers
    int32_t m_acting{-1};                                //!< index of the acting teacher
    std::vector<agent::Reply> m_replies;                 //!< this epoch's replies
    agent::Reply m_explored{};                           //!< the acting reply after exploration
};

} // namespace ns3

#endif /* AQM_LLM_TEACHER_SET_H */
