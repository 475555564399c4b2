"""Resumable parameter sweeps on Dask, the results database, export and the report."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from aqm_llm import ConfigError
from aqm_llm.results import load
from aqm_llm.runner import AgentSpec, RunSpec, run_simulation
from aqm_llm.sweep import ClusterConfig, SweepRun, cores_needed, load_spec, parse_spec, plan, run_sweep, simulate
from aqm_llm.sweep.cluster import check_remote_resources, plan_local
from aqm_llm.report import write_report
from aqm_llm.report.stats import mean_ci, t_quantile
from conftest import REPO

SHORT = {"duration": "2s", "warmup": "0.5s"}
NO_TRAFFIC = {**SHORT, "l4s_flows": 0, "classic_flows": 0}  # passes Python validation; the program exits 2
AQM = [sys.executable, "-m", "aqm_llm.cli"]


def rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, key, status, started, finished, attempts FROM runs ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


@pytest.fixture(scope="module")
def six_runs(tmp_path_factory) -> tuple[Path, list[SweepRun]]:
    db = tmp_path_factory.mktemp("sweep6") / "results.db"
    specs = [RunSpec("dumbbell", q, s, SHORT) for q in ("fq-codel-l4s", "dualpi2", "fifo") for s in (1, 2)]
    summary = run_sweep(specs, db, cluster=ClusterConfig(workers=2), progress=False)
    assert (summary.total, summary.ok, summary.failed, summary.skipped) == (6, 6, 0, 0), summary
    return db, plan(specs)


# --- a sweep runs every combination exactly once ----------------------------------------

def test_six_runs_on_two_workers_fill_exactly_those_rows(six_runs):
    db, planned = six_runs
    df = load(db)
    assert len(df) == 6
    assert set(df["key"]) == {r.key() for r in planned}
    assert (df["status"] == "ok").all() and (df["attempts"] == 1).all()
    assert set(df["param.duration"]) == {"2s"} and set(df["param.warmup"]) == {"0.5s"}
    assert df["worker"].nunique() <= 2
    # flat columns agree with the stored metrics
    full = load(db, metrics=True)
    for _, r in full.iterrows():
        assert r["utilisation"] == pytest.approx(r["metrics"]["utilisation"])
        assert r["l4s_sojourn_p99_ms"] == pytest.approx(r["metrics"]["classes"]["l4s"]["sojourn_ms"]["p99"])
        assert r["metrics"]["run"]["key"] == r["key"]  # same identity as `aqm-llm run`
        assert json.loads(r["versions"])["ns3"] == "3.44"
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM timeseries").fetchone()[0] == 6
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_second_invocation_runs_nothing(six_runs):
    db, planned = six_runs
    before = rows(db)
    t0 = time.monotonic()
    summary = run_sweep([r.spec for r in planned], db, cluster=ClusterConfig(workers=2), progress=False)
    assert (summary.skipped, summary.ok) == (6, 0)
    assert time.monotonic() - t0 < 10  # no cluster was started
    assert rows(db) == before


# --- runs another database holds are copied in, not run again --------------------------------

def must_not_run(run: SweepRun, output_dir: Path) -> dict:
    raise AssertionError(f"{run.label()} ran although another database holds it")


def test_reuse_from_copies_the_runs_another_database_holds(six_runs, tmp_path):
    from aqm_llm.results import ResultsDB, RunRecord

    source, planned = six_runs
    target = tmp_path / "target.db"
    first = planned[0]
    with ResultsDB(target) as db:  # a failed attempt of one run is already here
        db.record(RunRecord(first.key(), "earlier", "dumbbell", first.spec.qdisc, first.spec.seed, first.spec.params,
                            "", None, "failed", "boom", 1.0, 2.0, "w", {}, None))
    failed_id = rows(target)[0][0]
    summary = run_sweep([r.spec for r in planned], target, task=must_not_run, progress=False, reuse_from=[source])
    assert (summary.total, summary.skipped, summary.reused, summary.ok, summary.failed) == (6, 0, 6, 0, 0)
    cols = "key, sweep, status, params, agent, started, wall_s, worker, versions, metrics, utilisation"
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        assert sorted(src.execute(f"SELECT {cols} FROM runs").fetchall()) == \
            sorted(dst.execute(f"SELECT {cols} FROM runs").fetchall())  # the rows as they were written
        assert dict(src.execute("SELECT key, csv_gz FROM timeseries").fetchall()) == \
            dict(dst.execute("SELECT key, csv_gz FROM timeseries").fetchall())
        # the failed row became the copied one: same id, its attempt counted
        assert dst.execute("SELECT id, attempts FROM runs WHERE key = ?", (first.key(),)).fetchone() == (failed_id, 2)
    finally:
        src.close()
        dst.close()
    again = run_sweep([r.spec for r in planned], target, task=must_not_run, progress=False, reuse_from=[source])
    assert (again.skipped, again.reused) == (6, 0)
    # A source's failed rows are not copied; a source of another schema fails before anything is written.
    other = tmp_path / "other.db"
    extra = RunSpec("dumbbell", "fifo", 9, SHORT)
    with ResultsDB(other) as db:
        db.record(RunRecord(extra.key(), "other", "dumbbell", "fifo", 9, SHORT, "", None, "failed", "boom", 1.0, 2.0,
                            "w", {}, None))
    with ResultsDB(target) as db:
        assert db.copy_from(other, [extra.key()]) == 0
    old_schema = tmp_path / "old.db"
    conn = sqlite3.connect(old_schema)
    conn.executescript("CREATE TABLE runs (key TEXT, status TEXT); CREATE TABLE timeseries (key TEXT, csv_gz BLOB);")
    conn.close()
    fresh = tmp_path / "fresh.db"
    for bad, needle in ((tmp_path / "missing.db", "no results database"),
                        (old_schema, "not an aqm-llm results database of this version")):
        with pytest.raises(ConfigError, match=needle):
            run_sweep([r.spec for r in planned], fresh, task=must_not_run, progress=False, reuse_from=[bad])
        assert not fresh.exists()  # refused before the database was created
    with pytest.raises(ConfigError, match="the database being written"):
        run_sweep([r.spec for r in planned], target, task=must_not_run, progress=False, reuse_from=[target])


# --- killed with SIGKILL midway, then resumed ---------------------------------------------

SHM = Path("/dev/shm")


def _mp_semaphores() -> set[str]:
    """multiprocessing's named semaphores (Dask's processes use them)."""
    return {p.name for p in SHM.glob("sem.mp-*")} if SHM.is_dir() else set()


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def test_killed_sweep_resumes_without_duplicates(tmp_path):
    semaphores_before = _mp_semaphores()
    sweep = tmp_path / "kill.yaml"
    sweep.write_text("name: kill\nscenarios: [dumbbell]\nqdiscs: [fq-codel-l4s, dualpi2]\nseeds: {count: 4}\n"
                     "params: {duration: 2s, warmup: 0.5s}\n")
    db = tmp_path / "results.db"
    cmd = [*AQM, "sweep", str(sweep), "--db", str(db), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len([r for r in rows(db) if r[2] == "ok"]) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no rows after 120 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, the Dask workers and their simulations
        proc.wait()
        # SIGKILL also killed multiprocessing's resource tracker, which would have unlinked the
        # group's semaphores: remove what it left, so that the suite leaves /dev/shm as it found it.
        _wait_group_gone(proc.pid)
        for name in _mp_semaphores() - semaphores_before:
            (SHM / name).unlink(missing_ok=True)
    done_before = rows(db)
    assert 2 <= len(done_before) < 8, "the sweep must be killed midway"

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{len(done_before)} already in" in again.stdout
    after = rows(db)
    assert len(after) == 8 and len({r[1] for r in after}) == 8
    assert all(r[2] == "ok" and r[5] == 1 for r in after)
    # rows committed before the kill are untouched: same id, same start and finish times
    assert after[:len(done_before)] == done_before
    assert min(r[3] for r in after[len(done_before):]) > max(r[4] for r in done_before)
    assert _mp_semaphores() <= semaphores_before  # the resumed sweep cleaned up after itself


def _processes_mentioning(text: str) -> list[int]:
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(text in arg for arg in p.info["cmdline"] or ()):
                found.append(p.pid)
        except psutil.Error:
            pass
    return found


def test_sigterm_stops_the_sweep_and_its_simulations(tmp_path):
    # Long runs: without the sweep stopping them, they would run on for a minute, orphaned.
    sweep = tmp_path / "term.yaml"
    sweep.write_text("scenarios: [dumbbell]\nqdiscs: [fifo]\nseeds: [1, 2]\nparams: {duration: 100s, warmup: 1s}\n")
    db, run_dir = tmp_path / "results.db", tmp_path / "results-runs"
    proc = subprocess.Popen([*AQM, "sweep", str(sweep), "--db", str(db), "--workers", "2", "--no-progress"],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(_processes_mentioning(str(run_dir))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)  # the driver only, as a batch system would
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143 and "terminated" in err  # 128 + SIGTERM, as a batch system expects
    assert _processes_mentioning(str(run_dir)) == [], "simulations outlived the sweep"
    assert rows(db) == []


# --- bad input: one line, exit 2, nothing run ----------------------------------------------

@pytest.mark.parametrize("text, needle", [
    ("scenarios: [dumbbell\n", "not valid YAML"),
    ("scenarios: [dumbbell]\nqdiscs: [fifo]\nparams: {nosuch: 3}\n", "nosuch"),
    ("scenarios: [dumbbell]\nqdiscs: [fifo]\ngrid: {bottleneck_rate: [10Mbps, fast]}\n", "bottleneck_rate"),
    ("scenarios: [dumbbell]\nqdiscs: [fifo, nosuch]\n", "nosuch"),
    ("scenarios: [dumbbell, 3]\nqdiscs: [fifo]\n", "scenarios: bad value '3': expected a name"),
    ("scenarios: [dumbbell, wifi]\nqdiscs: [fifo]\nparams: {bottleneck_rate: 10Mbps}\n", "per_scenario"),
    ("scenarios: [dumbbell]\nqdiscs: [fifo]\nseeds: 3\n", "seeds"),
    ("scenarios: [dumbbell]\nqdisc: [fifo]\n", "unknown key 'qdisc'"),
    ("scenarios: [dumbbell]\nqdiscs: [fifo]\nparams: {duration: 2s, warmup: 3s}\n", "warmup"),
    ("scenarios: [dumbbell, wifi]\nqdiscs: [dualpi2]\ngrid: {'ns3::DualPi2QueueDisc::Target': [10ms, fast]}\n",
     "bad ns-3 attribute 'ns3::DualPi2QueueDisc::Target=fast'"),
    ("scenarios: [dumbbell]\nqdiscs: [dualpi2]\nparams: {'ns3::DualPi2QueueDisc::Nope': 1}\n",
     "bad ns-3 attribute 'ns3::DualPi2QueueDisc::Nope=1'"),
])
def test_bad_sweep_file_fails_before_any_run(tmp_path, text, needle):
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(text)
    db = tmp_path / "results.db"
    proc = subprocess.run([*AQM, "sweep", str(sweep), "--db", str(db)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert rows(db) == []
    assert not (tmp_path / "results-runs").exists()


def test_per_scenario_scoping_grid_and_include():
    spec = parse_spec({
        "scenarios": ["dumbbell", "wifi"], "qdiscs": ["fifo", "dualpi2"], "seeds": {"count": 2, "start": 5},
        "params": SHORT, "per_scenario": {"dumbbell": {"bottleneck_rate": ["50Mbps", "100Mbps"]},
                                          "wifi": {"mac_queue": 64}},
        "include": [{"scenario": "dumbbell", "qdisc": "red", "params": {"rtt": "40ms"}, "seeds": [1]}]})
    runs = plan(spec)
    assert len(runs) == 2 * 2 * 2 + 2 * 2 + 1
    wifi = [r for r in runs if r.spec.scenario == "wifi"]
    assert all(r.spec.params["mac_queue"] == "64" for r in wifi)  # normalised to the program's strings
    assert {r.spec.seed for r in wifi} == {5, 6}
    red = [r for r in runs if r.spec.qdisc == "red"]
    assert len(red) == 1 and red[0].spec.params == {**SHORT, "rtt": "40ms"}
    # the identity is the runner's: 64 and "64" are the same run
    assert runs[0].key() == RunSpec("dumbbell", "fifo", 5, {**SHORT, "bottleneck_rate": "50Mbps"}).key()


def test_example_sweep_files_are_valid():
    compare = plan(load_spec(REPO / "sweeps" / "compare.yaml"))
    assert len(compare) == 2 * 5 * 3
    assert len(plan(load_spec(REPO / "sweeps" / "tiny.yaml"))) >= 2
    # ns-3 attribute defaults are sweep axes too, shared by every scenario program
    target = plan(load_spec(REPO / "sweeps" / "wifi-dualpi2-target.yaml"))
    assert len({r.key() for r in target}) == len(target) == (4 + 3) * 15
    assert {r.spec.params.get("ns3::DualPi2QueueDisc::Target") for r in target} == {"10ms", "15ms", "20ms", "30ms", None}
    # the frontier sweeps the README quotes: a grid plus include rows, every run its own key
    for name, runs in (("wifi-l4s-ramp.yaml", (4 + 3) * 15), ("leo-dualpi2-frontier.yaml", 4 * 15),
                       ("wifi-dualpi2-teacher.yaml", 15)):
        planned = plan(load_spec(REPO / "sweeps" / name))
        assert len({r.key() for r in planned}) == len(planned) == runs, name


# --- failed runs are recorded, the sweep goes on, the next invocation retries them --------

def crash_on_seed_3(run: SweepRun, output_dir: Path) -> dict:
    """A custom task: seed 3 runs a program that dies with a message on stderr."""
    if run.spec.seed == 3:
        run_simulation(["sh", "-c", "echo 'warming up' >&2; echo 'assert failed: queue went negative' >&2; exit 3"])
    return simulate(run, output_dir)


def test_failed_runs_are_recorded_and_retried(tmp_path, capsys):
    from distributed import LocalCluster

    db = tmp_path / "results.db"
    specs = [RunSpec("dumbbell", "fifo", s, SHORT) for s in (1, 2, 3)] + [RunSpec("dumbbell", "fifo", 1, NO_TRAFFIC)]
    # An existing cluster (the --scheduler path), its workers offering one core each.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, resources={"cores": 1},
                      dashboard_address=None) as cluster:
        cfg = ClusterConfig(scheduler=cluster.scheduler_address)
        first = run_sweep(specs, db, cluster=cfg, task=crash_on_seed_3, progress=False)
        assert (first.ok, first.failed) == (2, 2)
        assert len(load(db)) == 4
        failed = load(db, status="failed")
        assert len(failed) == 2
        crash = failed[failed["seed"] == 3].iloc[0]
        assert "status 3" in crash["error"] and "queue went negative" in crash["error"]
        assert "warming up" in crash["error"]  # the tail, not just the last line
        no_traffic = failed[failed["param.l4s_flows"] == "0"].iloc[0]
        assert "no traffic" in no_traffic["error"]
        before = rows(db)

        capsys.readouterr()
        second = run_sweep(specs, db, cluster=cfg, name="retry")  # default task: seed 3 now works
    assert (second.skipped, second.ok, second.failed) == (2, 1, 1)
    err = capsys.readouterr().err  # not a terminal: plain lines, the failure named, the last one at the end
    assert "failed: " in err and "no traffic" in err and "\r" not in err
    assert err.strip().splitlines()[-1].startswith("retry: 4/4 runs done, 1 failed, ")
    after = {r[1]: r for r in rows(db)}
    assert len(after) == 4
    for r in before:
        if r[2] == "ok":
            assert after[r[1]] == r  # never re-run
        else:
            assert after[r[1]][0] == r[0] and after[r[1]][5] == 2  # same row, second attempt
    assert after[crash["key"]][2] == "ok" and after[no_traffic["key"]][2] == "failed"


# --- export and report --------------------------------------------------------------------

def test_export_csv_and_parquet(six_runs, tmp_path):
    db, _ = six_runs
    for name in ("out.csv", "out.parquet"):
        proc = subprocess.run([*AQM, "export", str(db), "-o", str(tmp_path / name)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    csv = pd.read_csv(tmp_path / "out.csv")
    parquet = pd.read_parquet(tmp_path / "out.parquet")
    for df in (csv, parquet):
        assert len(df) == 6 and "param.duration" in df and "l4s_sojourn_p99_ms" in df
    proc = subprocess.run([*AQM, "export", str(db), "-o", str(tmp_path / "out.xlsx")], capture_output=True, text=True)
    assert proc.returncode == 2 and "csv" in proc.stderr


def test_report_has_tables_and_plots(six_runs, tmp_path):
    db, _ = six_runs
    rep = write_report(db, tmp_path / "report")
    assert rep.sections == 1 and rep.ok_runs == 6
    pngs = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert pngs == ["dumbbell-bars.png", "dumbbell-cdf.png", "dumbbell-timeseries.png"]
    assert all((tmp_path / "report" / p).stat().st_size > 10_000 for p in pngs)
    html = rep.index.read_text()
    assert html.count("<img ") == 3 and all(p in html for p in pngs)
    for q in ("fq-codel-l4s", "dualpi2", "fifo"):
        assert f"<td>{q}</td>" in html
    assert "±" in html  # mean ± CI over the two seeds
    assert (tmp_path / "report" / "tables.md").read_text().count("\n| ") >= 4


# --- small pieces ---------------------------------------------------------------------------

def test_cores_per_run_and_local_cluster_plan():
    assert cores_needed("fifo", {}) == 1
    # Lockstep: an l4s-llm run occupies its agent's threads; a sweep's agent has 1 unless it says.
    assert cores_needed("l4s-llm", {}, AgentSpec(threads=2)) == 2
    assert cores_needed("l4s-llm", {}) == 1
    assert cores_needed("l4s-llm", {"llm_mode": "teacher"}) == 1
    assert plan_local(ClusterConfig(), max_need=1, pending=10, cpus=2) == (2, 1)
    assert plan_local(ClusterConfig(), max_need=3, pending=10, cpus=2) == (1, 3)  # runs alone
    assert plan_local(ClusterConfig(), max_need=1, pending=1, cpus=8) == (1, 1)
    with pytest.raises(ConfigError, match="needs 3 cores"):
        plan_local(ClusterConfig(workers=2), max_need=3, pending=4, cpus=2)

    class FakeClient:
        def scheduler_info(self):
            return {"workers": {"tcp://a": {"resources": {}}}}

    with pytest.raises(ConfigError, match="--resources cores="):
        check_remote_resources(FakeClient(), 1, "tcp://head:8786")


def test_t_interval():
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(0.975, 2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile(0.975, 29) == pytest.approx(2.0452, abs=1e-4)
    ci = mean_ci([1.0, 2.0, 3.0])
    assert (ci.mean, ci.n) == (2.0, 3) and ci.half_width == pytest.approx(4.3027 / 3 ** 0.5, rel=1e-4)
    assert mean_ci([5.0]).text() == "5.00"


def test_a_run_over_its_wall_clock_limit_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path):
    from aqm_llm.results import load
    from aqm_llm.sweep import ClusterConfig, parse_spec, run_sweep
    from aqm_llm.sweep.runs import wall_clock_limit

    doc = {"scenarios": ["dumbbell"], "qdiscs": ["dualpi2", "fifo"], "timeseries": False,
           "params": {"duration": "1s", "warmup": "500ms"}, "run_timeout_s": 0.05}
    spec = parse_spec(doc)
    assert all(wall_clock_limit(r) == 0.05 for r in spec.runs())
    assert wall_clock_limit(parse_spec({**doc, "run_timeout_s": None}).runs()[0]) == 120 + 30 * 1.0
    summary = run_sweep(spec, tmp_path / "s.db", cluster=ClusterConfig(workers=1), progress=False)
    assert summary.failed == 2 and summary.ok == 0
    df = load(tmp_path / "s.db")
    assert set(df["status"]) == {"failed"}
    assert all("wall-clock limit" in e for e in df["error"])
    with pytest.raises(ConfigError, match="run_timeout_s: bad value '-1'"):
        parse_spec({**doc, "run_timeout_s": -1})


def test_a_second_sweep_on_the_same_database_is_refused_and_each_run_happens_once(tmp_path):
    sweep = tmp_path / "twice.yaml"
    sweep.write_text("name: twice\nscenarios: [dumbbell]\nqdiscs: [fq-codel-l4s, dualpi2]\nseeds: {count: 3}\n"
                     "params: {duration: 2s, warmup: 0.5s}\ntimeseries: false\n")
    db = tmp_path / "results.db"
    cmd = [*AQM, "sweep", str(sweep), "--db", str(db), "--workers", "1", "--no-progress"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not db.exists() or not rows(db):
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first sweep recorded nothing in 120 s"
            time.sleep(0.05)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "is in use by another sweep (pid " in lines[0], lines
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    after = rows(db)
    assert len(after) == 6 and len({r[1] for r in after}) == 6 and all(r[5] == 1 for r in after)
    # Once the first is done, the database is free again: a rerun finds everything done.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "6 already in" in again.stdout
