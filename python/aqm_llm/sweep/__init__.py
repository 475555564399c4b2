"""Parameter sweeps: a grid of scenario x queue disc x parameters x seeds, run on Dask, resumable.

    from aqm_llm.sweep import load_spec, run_sweep, ClusterConfig
    summary = run_sweep(load_spec("sweeps/compare.yaml"), "results.db", cluster=ClusterConfig(workers=2))
    # or a list of runs, and a custom task (module-level function: task(run, output_dir) -> metrics)
    run_sweep([RunSpec("dumbbell", "dualpi2", seed=s) for s in (1, 2, 3)], "results.db", task=my_task)

Modules: spec (sweep files), runs (run identity, cores per run), tasks (what a worker does),
cluster (LocalCluster or an existing scheduler), execute (run_sweep).
"""

from aqm_llm.sweep.cluster import ClusterConfig
from aqm_llm.sweep.execute import SweepSummary, plan, run_sweep
from aqm_llm.sweep.runs import SweepRun, cores_needed
from aqm_llm.sweep.spec import SweepSpec, load_spec, parse_spec
from aqm_llm.sweep.tasks import TaskOutcome, simulate

__all__ = ["ClusterConfig", "SweepRun", "SweepSpec", "SweepSummary", "TaskOutcome", "cores_needed", "load_spec",
           "parse_spec", "plan", "run_sweep", "simulate"]
