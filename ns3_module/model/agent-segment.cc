/*
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include "agent-segment.h"

#include "agent-messages.h"
#include "agent-shm.h"

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ns3
{
namespace agent
{
namespace shm
{

bool
ValidSegmentName(const std::string& name)
{
    if (name.size() < 2 || name.size() > 200 || name[0] != '/')
    {
        return false;
    }
    return name.find('/', 1) == std::string::npos;
}

std::string
NewSegmentName()
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != static_cast<ssize_t>(sizeof(r)))
    {
        static std::atomic<uint64_t> counter{0};
        r = static_cast<uint64_t>(NowNs()) * 0x9e3779b97f4a7c15ULL + counter.fetch_add(1);
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), "/%s%d-%016llx", kSegmentPrefix, static_cast<int>(getpid()),
                  static_cast<unsigned long long>(r));
    return buf;
}

std::string
LayoutDescription(uint32_t version, uint32_t headerSize, uint32_t requestSize, uint32_t replySize,
                  uint64_t layoutHash)
{
    return "protocol v" + std::to_string(version) + " (header " + std::to_string(headerSize) +
           " B, request " + std::to_string(requestSize) + " B, reply " +
           std::to_string(replySize) + " B, layout " + Hex(layoutHash) + ")";
}

std::string
OurLayout()
{
    return LayoutDescription(kProtocolVersion, sizeof(SegmentHeader), sizeof(Request),
                             sizeof(Reply), LayoutHash());
}

size_t
RemoveStaleSegments()
{
    DIR* dir = opendir(kShmDir);
    if (dir == nullptr)
    {
        return 0;
    }
    size_t removed = 0;
    const size_t prefixLen = std::strlen(kSegmentPrefix);
    while (dirent* entry = readdir(dir))
    {
        const char* name = entry->d_name;
        if (std::strncmp(name, kSegmentPrefix, prefixLen) != 0)
        {
            continue;
        }
        char* end = nullptr;
        long pid = std::strtol(name + prefixLen, &end, 10);
        if (end == name + prefixLen || *end != '-' || pid <= 0 || pid > INT32_MAX)
        {
            continue;
        }
        std::string shmName = std::string("/") + name;
        int fd = shm_open(shmName.c_str(), O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0)
        {
            continue; // not ours to read (another user), or just removed
        }
        struct stat st;
        bool stale = false;
        if (fstat(fd, &st) == 0 && st.st_uid == geteuid())
        {
            uint64_t startTime = 0;
            if (st.st_size >= static_cast<off_t>(kFrozenPrefixSize))
            {
                void* p = mmap(nullptr, kFrozenPrefixSize, PROT_READ, MAP_SHARED, fd, 0);
                if (p != MAP_FAILED)
                {
                    const auto* h = static_cast<const SegmentHeader*>(p);
                    if (Load(h->magic) == kMagic && h->creator_pid == pid)
                    {
                        startTime = h->creator_start_time;
                    }
                    munmap(p, kFrozenPrefixSize);
                }
            }
            stale = !ProcessAlive(static_cast<int32_t>(pid), startTime);
        }
        close(fd);
        if (stale && shm_unlink(shmName.c_str()) == 0)
        {
            ++removed;
        }
    }
    closedir(dir);
    return removed;
}

} // namespace shm
} // namespace agent
} // namespace ns3
