"""Bad input through the CLI: one line naming the bad value, exit status 2, no traceback, nothing
simulated (the start of the bad-input suite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aqm_llm import ConfigError, cli
from conftest import REPO


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_run_refuses_a_timeout_that_is_not_positive(tmp_path: Path, value: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["run", "dumbbell", "--qdisc", "dualpi2", "--timeout", value, "-o", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "for timeout" in err[0] and "Traceback" not in err[0]
    assert not list(tmp_path.iterdir())  # nothing was simulated or written


def _one_line_error(rc: int, capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    for needle in needles:
        assert needle in err[0], err
    return err[0]


def test_output_dir_that_is_a_file_or_unwritable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    rc = cli.main(["run", "dumbbell", "--qdisc", "dualpi2", "--set", "duration=1s", "-o", str(afile)])
    _one_line_error(rc, capsys, str(afile), "is a file")
    assert afile.read_text() == "keep me"
    rc = cli.main(["compare", "dumbbell", "--qdisc", "dualpi2", "-o", str(afile / "sub")])
    _one_line_error(rc, capsys, "afile")


def test_compare_needs_a_queue_disc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["compare", "dumbbell", "--qdisc", ",", "-o", str(tmp_path)])
    _one_line_error(rc, capsys, "bad --qdisc ','", "allowed:")


def _results_db(path: Path) -> None:
    from aqm_llm.sweep import parse_spec, run_sweep

    spec = parse_spec({"scenarios": ["dumbbell"], "qdiscs": ["dualpi2"],
                       "params": {"duration": "1s", "warmup": "500ms"}, "timeseries": False})
    run_sweep(spec, path, progress=False)


def test_report_and_export_of_bad_databases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    adir = tmp_path / "adir"
    adir.mkdir()
    rc = cli.main(["export", str(adir), "-o", str(tmp_path / "x.csv")])
    _one_line_error(rc, capsys, "is a directory")
    other = tmp_path / "other.db"  # another program's database with a table called runs
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE runs (name TEXT)")
    before = other.read_bytes()
    for argv in (["export", str(other), "-o", str(tmp_path / "x.csv")],
                 ["report", str(other), "-o", str(tmp_path / "rep")]):
        _one_line_error(cli.main(argv), capsys, "not an aqm-llm results database")
    assert other.read_bytes() == before  # opened read-only: not even switched to WAL
    assert not (tmp_path / "other.db-wal").exists()
    # A real database with one damaged metrics cell: the error names the run.
    good = tmp_path / "good.db"
    _results_db(good)
    with sqlite3.connect(good) as conn:
        key = conn.execute("SELECT key FROM runs").fetchone()[0]
        conn.execute("UPDATE runs SET metrics = '{broken' WHERE key = ?", (key,))
    rc = cli.main(["report", str(good), "-o", str(tmp_path / "rep2")])
    _one_line_error(rc, capsys, key, "damaged metrics")
    (tmp_path / "out.csv").mkdir()
    rc = cli.main(["export", str(good), "-o", str(tmp_path / "out.csv")])
    _one_line_error(rc, capsys, "out.csv", "is a directory")


def _binary_error(scenario: str, *args: str) -> str:
    """Run a scenario program directly with bad input: exit 2, one line on stderr, no signal."""
    import subprocess

    from aqm_llm.native import scenario_binary

    proc = subprocess.run([str(scenario_binary(scenario)), *args, "--duration=1s", "--warmup=500ms"],
                          capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-500:])
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("value", ["99999999999999999999B", "1000000000000p", "1e12p", "20000000p", "0p"])
def test_scenario_refuses_a_buffer_out_of_range(value: str) -> None:
    line = _binary_error("dumbbell", f"--buffer={value}")
    assert f"bad value '{value}' for buffer" in line


def test_scenario_refuses_a_draw_stream_for_a_queue_disc_without_one(tmp_path: Path) -> None:
    import subprocess

    from aqm_llm.runner import RunSpec, build_command
    from aqm_llm.scenarios import describe

    line = _binary_error("dumbbell", "--qdisc=fifo", "--qdisc_stream=3")
    assert "bad value '3' for qdisc_stream" in line and "dualpi2 and l4s-llm" in line
    # The program declares which queue discs take the parameter; the runner refuses the same run
    # with the same line before starting it, and passes the default and the queue discs it names.
    assert describe("dumbbell").params["qdisc_stream"].qdiscs == ("dualpi2", "l4s-llm")
    with pytest.raises(ConfigError) as refused:
        build_command(RunSpec("dumbbell", "fifo", 1, {"qdisc_stream": 3}), Path("out.json"))
    assert str(refused.value) == line.split(": ", 1)[1]
    build_command(RunSpec("dumbbell", "fifo", 1, {"qdisc_stream": -1}), Path("out.json"))
    build_command(RunSpec("dumbbell", "l4s-llm", 1, {"qdisc_stream": 3}), Path("out.json"))
    # The default spelled another way is the default, for the program too.
    cmd = build_command(RunSpec("dumbbell", "fifo", 1, {"qdisc_stream": "-01", "duration": "1s", "warmup": "0.5s"}),
                        tmp_path / "out.json")
    assert subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0


def test_scenario_refuses_bad_traces(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("0,1e30\n1,50\n")
    assert "bad rate '1e30'" in _binary_error("fiveg", f"--trace={bad}")
    late = tmp_path / "late.csv"
    late.write_text("0,50\n1e30,50\n")
    assert "bad time '1e30'" in _binary_error("fiveg", f"--trace={late}")
    assert "is not a regular file" in _binary_error("fiveg", "--trace=/dev/zero")
    assert "is a directory" in _binary_error("fiveg", f"--trace={tmp_path}")


@pytest.mark.parametrize("text, needle", [
    ("scenarios: [dumbbell]\nqdiscs: [fifo]\nseeds: [1]\nseeds: [2]\n", "key 'seeds' appears twice"),
    ("scenarios: [dumbbell]\nqdiscs: [fifo]\nseeds: {count: 100000000}\n", "bad count '100000000'"),
    ("scenarios: [dumbbell]\nqdiscs: [fifo, dualpi2]\nseeds: {count: 10000}\n"
     "grid: {rtt: [1ms, 2ms, 3ms, 4ms, 5ms, 6ms]}\n", "120000 runs in one file; at most 100000"),
])
def test_sweep_files_with_duplicate_keys_or_huge_grids(tmp_path: Path, text: str, needle: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    db = tmp_path / "s.db"
    rc = cli.main(["sweep", str(f), "--dry-run", "--db", str(db)])
    _one_line_error(rc, capsys, needle)
    assert not db.exists()


def _damaged_checkpoints(tmp_path: Path) -> dict[str, Path]:
    """Copies of the shipped checkpoint's small files, each broken one way."""
    import shutil

    src = Path(__file__).resolve().parents[1] / "models" / "l4s-llm"
    out = {}
    for how in ("no-config", "bad-config", "truncated-weights", "no-weights"):
        d = tmp_path / how
        shutil.copytree(src, d)
        out[how] = d
    (out["no-config"] / "config.json").unlink()
    (out["bad-config"] / "config.json").write_text("{not json")
    w = out["truncated-weights"] / "policy.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    (out["no-weights"] / "policy.safetensors").unlink()
    out["missing-dir"] = tmp_path / "nowhere"
    return out


def test_damaged_or_missing_checkpoints_fail_before_anything_starts(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import time

    for how, ckpt in _damaged_checkpoints(tmp_path).items():
        out = tmp_path / f"out-{how}"
        t0 = time.monotonic()
        rc = cli.main(["run", "dumbbell", "--qdisc", "l4s-llm", "--checkpoint", str(ckpt), "-o", str(out)])
        line = _one_line_error(rc, capsys, str(ckpt))
        assert time.monotonic() - t0 < 5, how  # no backbone load, no simulation
        assert not list(out.glob("*.json")), line
    f = tmp_path / "s.yaml"
    f.write_text("scenarios: [dumbbell]\nqdiscs: [l4s-llm]\nagent: {checkpoint: %s}\n" % (tmp_path / "nowhere"))
    _one_line_error(cli.main(["sweep", str(f), "--dry-run", "--db", str(tmp_path / "s.db")]), capsys,
                    "no checkpoint directory")
    f.write_text("scenarios: [dumbbell]\nqdiscs: [l4s-llm]\nagent: {agent: 'nosuch.module:Nope'}\n")
    _one_line_error(cli.main(["sweep", str(f), "--dry-run", "--db", str(tmp_path / "s.db")]), capsys,
                    "no module named 'nosuch.module'")


def test_agent_server_refuses_a_damaged_checkpoint_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    ckpt = _damaged_checkpoints(tmp_path)["truncated-weights"]
    proc = subprocess.run([sys.executable, "-m", "aqm_llm.agent.server", "--checkpoint", str(ckpt)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "policy.safetensors is truncated" in proc.stdout + proc.stderr


def test_train_with_a_missing_or_damaged_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = Path(__file__).resolve().parents[1] / "configs" / "train-small.yaml"
    rc = cli.main(["train", str(cfg), "--pool", str(tmp_path / "nopool"), "-o", str(tmp_path / "out")])
    _one_line_error(rc, capsys, "is not an experience pool")
    pool = tmp_path / "garbage"
    pool.mkdir()
    (pool / "manifest.json").write_text("{garbage")
    rc = cli.main(["train", str(cfg), "--pool", str(pool), "-o", str(tmp_path / "out")])
    _one_line_error(rc, capsys, "damaged pool manifest")


def test_unknown_parameter_lists_only_what_set_may_change(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["run", "dumbbell", "--set", "nosuch=1"])
    line = _one_line_error(rc, capsys, "unknown parameter 'nosuch'", "bottleneck_rate")
    allowed = line.split("allowed:")[1].replace(" ", "").split(",")
    for owned in ("output", "progress", "agent_channel", "qdisc", "seed", "timeseries"):
        assert owned not in allowed


def test_run_help_lists_scenarios_and_queue_discs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    assert "scenarios: dumbbell, fiveg, satellite, wifi" in out
    assert "queue discs: " in out and "dualpi2" in out and "l4s-llm" in out


def test_a_killed_runs_leftovers_are_removed_at_the_next_start(tmp_path: Path) -> None:
    import aqm_llm
    from aqm_llm.runner import RunSpec

    params = {"duration": "1s", "warmup": "500ms"}
    stem = f"dumbbell-dualpi2-s1-{RunSpec('dumbbell', 'dualpi2', 1, dict(params)).key()}"
    dead_pid = 2 ** 22 + 12345  # above any pid this machine hands out
    stale = [tmp_path / f".{stem}.{dead_pid}.partial.json", tmp_path / f".{stem}.{dead_pid}.agent.json"]
    live = tmp_path / f".{stem}.1.partial.json"  # pid 1 is alive: not ours to remove
    for f in [*stale, live]:
        f.write_text("{}")
    aqm_llm.run("dumbbell", qdisc="dualpi2", seed=1, params=params, output_dir=tmp_path)
    assert not any(f.exists() for f in stale) and live.exists()


def test_progress_lines_off_a_terminal_and_the_log_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import aqm_llm

    m = aqm_llm.run("dumbbell", qdisc="dualpi2", params={"duration": "3s", "warmup": "1s"},
                    output_dir=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "dumbbell/dualpi2/seed 1: sim " in err and "s to go" in err
    assert Path(m["run"]["log_path"]).is_file() and Path(m["run"]["log_path"]).parent == tmp_path


def test_ns3_attributes_flowmonitor_and_pcap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import struct

    import aqm_llm

    fm, pcap = tmp_path / "flows.xml", tmp_path / "bottleneck"
    m = aqm_llm.run("dumbbell", qdisc="dualpi2", params={
        "duration": "2s", "warmup": "1s", "ns3::TcpSocket::InitialCwnd": 20,
        "flowmon": str(fm), "pcap": str(pcap)}, output_dir=tmp_path / "out")
    assert m["config"]["ns3::TcpSocket::InitialCwnd"] == "20"
    assert "<FlowMonitor>" in fm.read_text()
    files = list(tmp_path.glob("bottleneck-*.pcap"))
    assert len(files) == 1  # the queue disc under test only
    head = files[0].read_bytes()
    magic, _, _, _, _, _, link = struct.unpack("<IHHiIII", head[:24])
    assert magic == 0xA1B2C3D4 and link == 101 and head[40] >> 4 == 4  # raw IPv4 packets
    # A packet count in the right range: what left the queue disc in 2 s at 100 Mb/s.
    assert 5_000 < (len(head) - 24) / 1540 < 40_000
    for bad in ("ns3::TcpSocket::Nope=1", "ns3::TcpSocket::InitialCwnd=abc", "ns3::TcpSocket::InitialCwnd=-1",
                "ns3::DualPi2QueueDisc::Target=fast",  # ns-3 itself would abort on a bad time
                "ns3::DualPi2QueueDisc::Scheduler=Bogus"):  # ... and on a name no enum has
        rc = cli.main(["run", "dumbbell", "--set", bad, "-o", str(tmp_path / "x")])
        _one_line_error(rc, capsys, f"bad ns-3 attribute '{bad}'")


def test_db_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("scenarios: [dumbbell]\nqdiscs: [fifo]\nparams: {duration: 1s, warmup: 500ms}\n")
    for argv in (["sweep", str(f), "--db", str(tmp_path)], ["report", str(tmp_path), "-o", str(tmp_path / "r")]):
        _one_line_error(cli.main(argv), capsys, "is a directory")


def test_reuse_from_a_missing_database_or_with_tables_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text("scenarios: [dumbbell]\nqdiscs: [dualpi2]\nparams: {duration: 1s, warmup: 500ms}\n")
    missing, target = tmp_path / "missing.db", tmp_path / "r.db"
    rc = cli.main(["sweep", str(sweep), "--db", str(target), "--reuse-from", str(missing), "--no-progress"])
    _one_line_error(rc, capsys, str(missing))
    assert not target.exists()
    rc = cli.main(["sweep", str(sweep), "--db", str(target), "--reuse-from", str(target), "--dry-run"])
    _one_line_error(rc, capsys, "the database being written")  # the dry run refuses what the run would
    rc = cli.main(["evaluate", str(REPO / "configs" / "evaluate-default.yaml"), "--tables-only",
                   "--reuse-from", str(missing)])
    _one_line_error(rc, capsys, "--reuse-from", "--tables-only")
