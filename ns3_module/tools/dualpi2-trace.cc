/*
 * SPDX-License-Identifier: GPL-2.0-only
 *
 * \brief Runs DualPi2Controller on a sequence of queue delays (reference traces).
 *
 * stdin: one update per line, "<classic delay s>" or "<classic delay s> <L delay s>";
 * blank lines and lines starting with '#' are skipped.
 * stdout: one line per update, "<p'> <p_C> <p_CL>" (%.17g).
 *
 *   aqm-llm-dualpi2-trace [--alpha=0.15] [--beta=3.0] [--target=0.015] [--k=2]
 *                         [--delay=classic|max] [--maxProb=1]
 */
#include "ns3/command-line.h"
#include "ns3/dual-pi2-controller.h"

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>

using namespace ns3;

int
main(int argc, char* argv[])
{
    DualPi2Controller::Params params;
    double target = params.target.GetSeconds();
    std::string delay = "classic";
    CommandLine cmd(__FILE__);
    cmd.Usage("Feed queue delays (s) on stdin, one update per line; prints p' p_C p_CL.");
    cmd.AddValue("alpha", "integral gain [Hz]", params.alpha);
    cmd.AddValue("beta", "proportional gain [Hz]", params.beta);
    cmd.AddValue("target", "target queue delay [s]", target);
    cmd.AddValue("k", "coupling factor", params.k);
    cmd.AddValue("delay", "delay source: classic or max", delay);
    cmd.AddValue("maxProb", "upper clamp of p'", params.maxProbBase);
    cmd.Parse(argc, argv);
    params.target = Seconds(target);
    if (delay == "max")
    {
        params.delaySource = DualPi2Controller::DelaySource::MAX;
    }
    else if (delay != "classic")
    {
        std::cerr << "--delay must be classic or max\n";
        return 2;
    }

    DualPi2Controller controller(params);
    std::string line;
    while (std::getline(std::cin, line))
    {
        if (line.empty() || line[0] == '#')
        {
            continue;
        }
        std::istringstream in(line);
        double dC = 0.0;
        double dL = 0.0;
        if (!(in >> dC))
        {
            std::cerr << "bad line: " << line << "\n";
            return 2;
        }
        in >> dL;
        controller.Update(Seconds(dC), Seconds(dL));
        std::printf("%.17g %.17g %.17g\n",
                    controller.GetProbBase(),
                    controller.GetProbC(),
                    controller.GetProbCL());
    }
    return 0;
}
