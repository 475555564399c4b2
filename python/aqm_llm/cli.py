"""The `aqm-llm` command line: one CLI over the library API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from aqm_llm.errors import ConfigError, SimulationError
from aqm_llm.scenarios import parse_sets


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's stop): handled like Ctrl-C, exit status 143 (128 + 15)."""


def _stop_on_sigterm() -> None:
    """End a long command on SIGTERM as on Ctrl-C: rows and checkpoints so far are kept."""
    import signal

    def terminated(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminated)


def _output_dir(path: str | Path | None, option: str) -> Path | None:
    """``path`` if it is (or can become) a writable directory; else a one-line ConfigError."""
    import os

    if path is None:
        return None
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"bad {option} '{p}': it is a file, not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"bad {option} '{p}': {exc.strerror}") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"bad {option} '{p}': not writable")
    return p


def _agent_spec(args: argparse.Namespace):
    from aqm_llm.runner import AgentSpec

    if args.agent_threads < 1:
        raise ConfigError(f"bad value '{args.agent_threads}' for --agent-threads: must be >= 1")
    return AgentSpec(agent=args.agent, checkpoint=args.checkpoint, backbone=args.backbone,
                     threads=args.agent_threads, seed=args.seed, runtime=args.runtime,
                     p_prime_band=args.p_prime_band, target_return=args.target_return,
                     sample=args.sample)


def _add_agent_options(p: argparse.ArgumentParser) -> None:
    from aqm_llm.agent.runtime import ONNX, RUNTIMES

    g = p.add_argument_group("l4s-llm agent (started and stopped by the runner)")
    g.add_argument("--agent", default="llm", help="'llm' or module:Class implementing aqm_llm.agent.interface.Agent")
    g.add_argument("--checkpoint", default=None, help="trained policy directory (default: the shipped one, if any)")
    g.add_argument("--backbone", default=None, help="'smollm2' or a local transformers causal-LM path")
    g.add_argument("--agent-threads", type=int, default=2,
                   help="threads of the agent process (ONNX Runtime or torch)")
    g.add_argument("--p-prime-band", default=None, metavar="FACTOR|coupled:FACTOR|ramp:FACTOR|off",
                   help="llm: hold the epoch probabilities within DualPI2's own x this factor on p' "
                        "('coupled:FACTOR': one factor for both classes; 'ramp:FACTOR': p_L around DualPI2's "
                        "epoch p_L, the L head's ramp included; default: the checkpoint's; "
                        "'off': the network's probabilities as they are)")
    g.add_argument("--target-return", type=float, default=None, metavar="RETURN",
                   help="llm: the return the policy is asked for (a reward per epoch under the "
                        "checkpoint's rtg_mode per_epoch; default: the checkpoint's own target)")
    g.add_argument("--sample", action="store_true",
                   help="llm: draw each packet's action from the head's distribution (seeded by --seed) "
                        "instead of taking the likeliest")
    g.add_argument("--runtime", choices=RUNTIMES, default=ONNX,
                   help="llm: 'onnx' (ONNX Runtime, the checkpoint's cached export; default) or "
                        "'torch' (eager PyTorch, the reference)")


def _cmd_run(args: argparse.Namespace) -> int:
    from aqm_llm.runner import run
    from aqm_llm.table import print_table

    metrics = run(args.scenario, qdisc=args.qdisc, seed=args.seed, params=parse_sets(args.set),
                  output_dir=_output_dir(args.output_dir, "-o/--output-dir"), timeseries=args.timeseries,
                  progress=not args.json,
                  agent=_agent_spec(args), timeout_s=args.timeout)
    if args.json:
        print(json.dumps(metrics, indent=1))
    else:
        print_table([metrics], title=f"{args.scenario} (seed {args.seed})")
        print(f"metrics: {metrics['run']['metrics_path']}")
    _print_run_notes([metrics])
    return 0


def _print_run_notes(results: Sequence[dict[str, Any]]) -> None:
    """On screen: each run's fallbacks, and the queue-disc settings its checkpoint gave it."""
    from aqm_llm.table import fallback_warning

    for m in results:
        line = fallback_warning(m)
        if line:
            print(f"aqm-llm: {line}", file=sys.stderr)
        given = m.get("run", {}).get("checkpoint_params") or {}
        if given:
            settings = ", ".join(f"{k}={v}" for k, v in sorted(given.items()))
            print(f"aqm-llm: {m['run']['qdisc']}: {settings} from the checkpoint (--set overrides)",
                  file=sys.stderr)


def _cmd_compare(args: argparse.Namespace) -> int:
    from aqm_llm.runner import run
    from aqm_llm.table import markdown, print_table
    from aqm_llm.scenarios import describe

    qdiscs = [q.strip() for q in args.qdisc.split(",") if q.strip()]
    allowed = describe(args.scenario).qdiscs
    if not qdiscs:
        raise ConfigError(f"bad --qdisc '{args.qdisc}': name at least one queue disc; allowed: {', '.join(allowed)}")
    for q in qdiscs:
        if q not in allowed:
            raise ConfigError(f"unknown queue disc '{q}'; allowed: {', '.join(allowed)}")
    params = parse_sets(args.set)
    out = _output_dir(args.output_dir, "-o/--output-dir")
    results = []
    for i, q in enumerate(qdiscs, 1):
        print(f"[{i}/{len(qdiscs)}] {args.scenario} with {q} (seed {args.seed})", file=sys.stderr, flush=True)
        results.append(run(args.scenario, qdisc=q, seed=args.seed, params=params,
                           output_dir=args.output_dir, timeseries=True, progress=True,
                           agent=_agent_spec(args)))
    print_table(results, title=f"{args.scenario}: queue discs compared (seed {args.seed})")
    (out / "comparison.md").write_text(markdown(results) + "\n")
    from aqm_llm.plots import comparison_plots

    written = comparison_plots(results, out)
    print(f"table: {out / 'comparison.md'}; plots: {', '.join(str(p) for p in written)}")
    _print_run_notes(results)
    return 0


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from aqm_llm.scenarios import available, describe

    if not args.name:
        for name in available():
            print(name)
        return 0
    spec = describe(args.name)
    for p in spec.params.values():
        extra = f" [{', '.join(p.choices)}]" if p.choices else ""
        print(f"{p.name:22s} {p.kind:7s} default {p.default!s:12s} {p.help}{extra}")
    return 0


def _cmd_build_flags(args: argparse.Namespace) -> int:
    from aqm_llm.native import build_flags

    flags = build_flags()
    if args.cmake:
        print(f"-DCMAKE_PREFIX_PATH={flags.cmake_prefix}")
    elif args.cflags:
        print(" ".join(flags.cxxflags))
    elif args.libs:
        print(" ".join(flags.ldflags))
    else:
        print(flags.shell())
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    try:
        module = importlib.import_module(f"aqm_llm.bench.{args.what}")
    except ModuleNotFoundError as exc:
        raise ConfigError(f"benchmark '{args.what}' is not available in this build ({exc.name})") from exc
    return int(module.main(list(args.rest)))


def _cmd_sweep(args: argparse.Namespace) -> int:
    from aqm_llm.sweep import load_spec, plan, run_sweep

    spec = load_spec(args.file)
    if args.dry_run:
        runs = plan(spec)
        status = _planned_status([r.key() for r in runs], args.db, args.reuse_from)
        for r in runs:
            print(f"{status[r.key()]:<6} {r.key()} cores={r.cores()} {r.label()}")
        _print_planned_counts(status)
        return 0
    cluster = _cluster(args)
    _stop_on_sigterm()  # rows so far kept, runs stopped
    summary = run_sweep(spec, args.db, cluster=cluster, run_dir=args.run_dir, progress=not args.no_progress,
                        reuse_from=args.reuse_from)
    print(f"{spec.name}: {summary.total} runs: {summary.skipped} already in {args.db}, "
          f"{_reused_text(summary.reused, args.reuse_from)}{summary.ok} ran ok, {summary.failed} failed")
    return _report_failures(summary.failures, "the sweep")


def _planned_status(keys: Sequence[str], db: str | Path, reuse_from: Sequence[str]) -> dict[str, str]:
    """Per run key, what running it now would do: 'done' (in ``db``), 'reuse' (copied from a
    ``--reuse-from`` database) or 'to run'. Reads the databases only."""
    from aqm_llm.results import ok_keys, reusable_keys

    done = ok_keys(db, keys) if Path(db).is_file() else set()
    reusable: set[str] = set()
    for source in reuse_from:
        reusable |= reusable_keys(source, keys, db)
    return {k: "done" if k in done else "reuse" if k in reusable else "to run" for k in keys}


def _print_planned_counts(status: Mapping[str, str]) -> None:
    values = list(status.values())
    reuse = values.count("reuse")
    print(f"{len(values)} runs, {values.count('to run')} to run" + (f", {reuse} to reuse" if reuse else ""))


def _reused_text(reused: int, sources: Sequence[str]) -> str:
    return f"{reused} reused from {', '.join(sources)}, " if sources else ""


def _report_failures(failures: Sequence[tuple[str, str]], rerun: str) -> int:
    """Print each failed run on stderr; exit status 1 if there were any."""
    for label, err in failures:
        print(f"  failed: {label}: {err}", file=sys.stderr)
    if failures:
        print(f"failed runs are recorded; running {rerun} again retries them", file=sys.stderr)
        return 1
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from aqm_llm.results import export

    path = export(args.db, args.output, with_metrics=args.with_metrics)
    print(f"wrote {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from aqm_llm.report import write_report

    rep = write_report(args.db, _output_dir(args.output_dir, "-o/--output-dir"))
    print(f"report: {rep.index} ({rep.sections} sections, {len(rep.images)} plots, {rep.ok_runs} runs"
          + (f", {rep.failed_runs} failed" if rep.failed_runs else "") + ")")
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    import dataclasses

    from aqm_llm.training.collector import load_collect_config, plan_runs

    cfg = load_collect_config(args.file, pool=args.pool)
    for name in ("workers", "cores_per_worker", "scheduler"):
        if getattr(args, name) is not None:
            cfg = dataclasses.replace(cfg, **{name: getattr(args, name)})
    if args.dry_run:
        runs = plan_runs(cfg)
        for r in runs:
            print(f"{r.key()} {r.label()}")
        print(f"{len(runs)} record runs into {cfg.pool}")
        return 0
    from aqm_llm.training.collector import collect

    _stop_on_sigterm()
    s = collect(cfg, progress=not args.no_progress)
    print(f"{cfg.name}: {s.total} runs: {s.skipped} already done, {s.ok} ran ok, {s.failed} failed; "
          f"pool {s.pool}: {s.epochs} epochs ({s.converted} parts written), manifest {s.pool / 'manifest.json'}")
    return _report_failures(s.failures, "collect")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from aqm_llm.evaluate import evaluate, load_eval_config

    cfg = load_eval_config(args.file)
    db = args.db or f"results/{cfg.name}.db"
    out = _output_dir(args.output_dir or f"results/{cfg.name}", "--output-dir")
    if args.dry_run:
        runs = cfg.runs()
        status = _planned_status([r.run.key() for r in runs], db, args.reuse_from)
        for r in runs:
            print(f"{status[r.run.key()]:<6} {r.run.key()} {r.setting.name} {r.label} seed {r.run.spec.seed}")
        _print_planned_counts(status)
        return 0
    cluster = _cluster(args)
    _stop_on_sigterm()
    # The command that reproduces the runs (re-rendering the tables is not part of it).
    command = ("aqm-llm evaluate " + " ".join(a for a in sys.argv[2:] if a != "--tables-only")
               if sys.argv[1:2] == ["evaluate"] else "")
    result = evaluate(cfg, db, out, cluster=cluster, run=not args.tables_only, progress=not args.no_progress,
                      command=command, reuse_from=args.reuse_from)
    print(result.markdown)
    s = result.summary
    if s is not None:
        print(f"{cfg.name}: {s.total} runs: {s.skipped} already in {db}, {_reused_text(s.reused, args.reuse_from)}"
              f"{s.ok} ran ok, {s.failed} failed")
    print(f"tables: {result.markdown_path}, {result.csv_path}")
    return _report_failures(s.failures, "aqm-llm evaluate") if s is not None else 0


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    # Before torch loads libgomp: spinning OpenMP workers slow each step ~10x as soon as another
    # process holds a core (measured for the agent: docs/bench-inference.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from aqm_llm.training.config import load_train_config
    from aqm_llm.training.trainer import train

    cfg = load_train_config(args.file).with_overrides(output=args.output, steps=args.steps, mlp=args.mlp,
                                                      bc=args.bc, device=args.device, pools=args.pool,
                                                      export=args.export)
    result = train(cfg, resume=not args.no_resume, progress=not args.no_progress)
    last = next((r for r in reversed(result.log) if r["phase"] == "train"), None)
    loss = f", final loss {last['loss']:.4f}" if last else ""
    print(f"{cfg.name}: {result.step} steps{loss}; checkpoint {result.checkpoint}; "
          f"losses {result.output / 'losses.csv'}")
    return 0


def _cmd_prepare_agent(args: argparse.Namespace) -> int:
    import os
    import time

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from aqm_llm.agent.policy import make_llm_policy

    start = time.monotonic()
    try:
        policy = make_llm_policy(args.checkpoint, args.backbone, runtime="onnx", threads=1)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    network = policy.network
    print(f"agent ready: {policy.source or 'untrained policy'} -> {getattr(network, 'path', '?')} "
          f"({time.monotonic() - start:.1f} s)")
    return 0


def _add_reuse_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reuse-from", action="append", default=[], metavar="DB",
                   help="copy in this database's successful runs with the same keys before running "
                        "(repeatable; a run's key covers scenario, queue disc, seed, parameters and policy)")


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    """Where the runs of a sweep, collection or evaluation go (aqm_llm.sweep.ClusterConfig)."""
    p.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes (default: from CPUs)")
    p.add_argument("--cores-per-worker", type=int, default=None,
                   help="cores each local worker offers to runs (default: CPUs / workers)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="use an existing Dask cluster (workers need --resources cores=N)")


def _cluster(args: argparse.Namespace) -> Any:
    from aqm_llm.sweep import ClusterConfig

    return ClusterConfig(workers=args.workers, cores_per_worker=args.cores_per_worker, scheduler=args.scheduler)


class _Parser(argparse.ArgumentParser):
    """A subcommand's parser; with ``lists_scenarios`` its help ends with the installed scenarios
    and queue discs (read from the scenario programs only when help is printed)."""

    lists_scenarios = False

    def format_help(self) -> str:
        text = super().format_help()
        if not self.lists_scenarios:
            return text
        from aqm_llm.scenarios import available, describe

        names = available()
        qdiscs = describe(names[0]).qdiscs if names else ()
        return (text + f"\nscenarios: {', '.join(names) or '(none built)'} "
                "(`aqm-llm scenarios NAME` lists a scenario's parameters)\n"
                f"queue discs: {', '.join(qdiscs)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aqm-llm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="run one simulation; prints a table (or JSON) and writes the metrics JSON")
    p.lists_scenarios = True
    p.add_argument("scenario")
    p.add_argument("--qdisc", default="fq-codel-l4s")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="scenario parameter (repeatable); `aqm-llm scenarios NAME` lists them")
    p.add_argument("--json", action="store_true", help="print the metrics JSON instead of a table")
    p.add_argument("--timeseries", action="store_true", help="also write a time-series CSV")
    p.add_argument("-o", "--output-dir", default=None, help="where metrics are written (default results/runs)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="wall-clock limit of the simulation; the run is killed past it")
    _add_agent_options(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("compare", help="run several queue discs on one scenario and print one table")
    p.lists_scenarios = True
    p.add_argument("scenario")
    p.add_argument("--qdisc", required=True, help="comma-separated names")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-o", "--output-dir", default="results/compare")
    _add_agent_options(p)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("scenarios", help="list scenarios, or one scenario's parameters")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=_cmd_scenarios)

    p = sub.add_parser("build-flags", help="compiler/linker flags to build your own ns-3 program with our module")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cflags", action="store_true")
    g.add_argument("--libs", action="store_true")
    g.add_argument("--cmake", action="store_true", help="CMAKE_PREFIX_PATH for find_package(AqmLlm)")
    p.set_defaults(func=_cmd_build_flags)

    p = sub.add_parser("bench", help="performance figures: channel | inference | finetune | sim | rtg "
                                          "(does return conditioning change decisions)")
    p.add_argument("what")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("prepare-agent", help="build a checkpoint's ONNX network for the agent's fast path "
                                             "into the cache (make does it for the shipped checkpoint)")
    p.add_argument("--checkpoint", default=None, help="policy directory (default: the shipped one)")
    p.add_argument("--backbone", default=None, help="'smollm2' (default) or a local causal-LM path")
    p.set_defaults(func=_cmd_prepare_agent)

    p = sub.add_parser("sweep", help="run a grid of scenario x qdisc x params x seeds on Dask; resumable")
    p.add_argument("file", help="sweep file (YAML; see docs/sweeps.md)")
    p.add_argument("--db", default="results.db", help="results database (SQLite), created if missing")
    _add_cluster_options(p)
    p.add_argument("--run-dir", default=None, help="metrics/time-series files (default: <db stem>-runs/)")
    _add_reuse_option(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="validate and list the runs; run nothing")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("export", help="write a results database as CSV or Parquet")
    p.add_argument("db")
    p.add_argument("-o", "--output", required=True, help="out.csv or out.parquet")
    p.add_argument("--with-metrics", action="store_true", help="include the full metrics JSON column")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("report", help="static HTML report (tables, CDFs, time series, CI bars) of a results database")
    p.add_argument("db")
    p.add_argument("-o", "--output-dir", default="report")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("collect", help="experience pool: teachers in record mode over a grid (resumable) -> Parquet")
    p.add_argument("file", help="collect config (YAML; see docs/training.md)")
    p.add_argument("--pool", default=None, help="pool directory (default: the config's `pool`)")
    _add_cluster_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="validate and list the runs; run nothing")
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser("evaluate", help="closed-loop evaluation: trained policies vs baselines, training and "
                                        "held-out settings, mean ± 95%% CI; resumable")
    p.add_argument("file", help="evaluation file (YAML; see docs/evaluation.md)")
    p.add_argument("--db", default=None, help="results database (default: results/<name>.db)")
    p.add_argument("-o", "--output-dir", default=None, help="evaluation.md and .csv (default: results/<name>/)")
    _add_cluster_options(p)
    _add_reuse_option(p)
    p.add_argument("--tables-only", action="store_true", help="run nothing; tables from what the database holds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="validate and list the runs; run nothing")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("train", help="offline training (return-conditioned + distillation, LoRA); resumable")
    p.add_argument("file", help="training config (YAML; see docs/training.md)")
    p.add_argument("-o", "--output", default=None, help="output directory (default: the config's `output`)")
    p.add_argument("--pool", action="append", default=None, help="experience pool (repeatable; default: the config's)")
    p.add_argument("--steps", type=int, default=None, help="override optim.steps")
    p.add_argument("--export", default=None,
                   help="also copy the final checkpoint here (the config's `export` is dropped with -o or --steps)")
    p.add_argument("--mlp", action="store_true", help="ablation: an MLP instead of the LLM backbone")
    p.add_argument("--bc", action="store_true", help="ablation: behaviour cloning without return conditioning")
    p.add_argument("--device", default=None, help="auto (cuda if available), cpu or cuda")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUTPUT/last exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "seed", 1) < 1:
            raise ConfigError(f"bad value '{args.seed}' for seed: must be >= 1")
        return int(args.func(args))
    except ConfigError as exc:
        print(f"aqm-llm: error: {exc}", file=sys.stderr)
        return 2
    except SimulationError as exc:
        print(f"aqm-llm: simulation failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print("aqm-llm: " + ("terminated" if isinstance(exc, Terminated) else "interrupted"), file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
