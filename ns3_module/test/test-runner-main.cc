/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * \brief Runs the aqm-llm module's ns-3 TestSuites (`--suite=NAME`, `--list`), as ns-3's
 * own test-runner does for upstream modules. ctest calls it once per suite.
 */
#include "ns3/test.h"

int
main(int argc, char* argv[])
{
    return ns3::TestRunner::Run(argc, argv);
}
