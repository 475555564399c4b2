"""The results database (SQLite): one row per run, committed as soon as the run ends.

Schema (version 1; also in docs/results-schema.md)::

    runs                       one row per run identity
      id           INTEGER PRIMARY KEY AUTOINCREMENT   stable: a retried failed run keeps its id
      key          TEXT NOT NULL UNIQUE  run identity: RunSpec.key() (sha256 of scenario, qdisc, seed,
                                         params), extended by agent policy / variant where they apply
      sweep        TEXT      name of the sweep that wrote the row
      scenario     TEXT NOT NULL
      qdisc        TEXT NOT NULL
      seed         INTEGER NOT NULL
      params       TEXT NOT NULL   JSON object, values as the scenario program's command-line strings
      variant      TEXT NOT NULL   '' unless a custom task sets one (e.g. 'record')
      agent        TEXT      JSON {agent, checkpoint, backbone, threads} for runs with an agent, else NULL
      status       TEXT NOT NULL   'ok' or 'failed'
      error        TEXT      failed runs: the error and the tail of the program's stderr
      attempts     INTEGER   how many times the run was tried (failed runs are retried on the next sweep)
      started, finished REAL unix seconds, on the worker
      wall_s       REAL      finished - started
      worker       TEXT      Dask worker address (host) that ran it
      versions     TEXT      JSON of software versions (aqm_llm, ns3, compiler; python)
      metrics      TEXT      the full metrics JSON the scenario wrote (NULL if failed)
      -- flat copies of the main metrics (NULL if failed or absent):
      utilisation, total_goodput_mbps,
      l4s_goodput_mbps, classic_goodput_mbps,
      l4s_sojourn_mean_ms, l4s_sojourn_p99_ms, classic_sojourn_mean_ms, classic_sojourn_p99_ms,
      loss_rate, mark_rate, jain_fairness, rtt_mean_ms                 REAL
      fallbacks    INTEGER,  reproducible INTEGER (0/1)
    timeseries                 the run's time-series CSV, gzip-compressed (runs with timeseries on)
      key          TEXT PRIMARY KEY REFERENCES runs(key)
      csv_gz       BLOB NOT NULL
    meta                       name/value pairs: schema_version

Durability: WAL journal, synchronous=FULL, one transaction per run. A successful row is never
overwritten; a failed one is replaced (same id, attempts + 1) when the run is tried again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from aqm_llm.errors import ConfigError

SCHEMA_VERSION = 1


def _get(m: Mapping[str, Any], *path: str) -> Any:
    cur: Any = m
    for p in path:
        if not isinstance(cur, Mapping) or p not in cur:
            return None
        cur = cur[p]
    return cur


def _bool(v: Any) -> int | None:
    return None if v is None else int(bool(v))


# (column, SQL type, value from the metrics dict): the one place that defines the flat columns.
FLAT_COLUMNS: tuple[tuple[str, str, Callable[[Mapping[str, Any]], Any]], ...] = (
    ("utilisation", "REAL", lambda m: _get(m, "utilisation")),
    ("total_goodput_mbps", "REAL", lambda m: _get(m, "total_goodput_mbps")),
    ("l4s_goodput_mbps", "REAL", lambda m: _get(m, "classes", "l4s", "goodput_mbps")),
    ("classic_goodput_mbps", "REAL", lambda m: _get(m, "classes", "classic", "goodput_mbps")),
    ("l4s_sojourn_mean_ms", "REAL", lambda m: _get(m, "classes", "l4s", "sojourn_ms", "mean")),
    ("l4s_sojourn_p99_ms", "REAL", lambda m: _get(m, "classes", "l4s", "sojourn_ms", "p99")),
    ("classic_sojourn_mean_ms", "REAL", lambda m: _get(m, "classes", "classic", "sojourn_ms", "mean")),
    ("classic_sojourn_p99_ms", "REAL", lambda m: _get(m, "classes", "classic", "sojourn_ms", "p99")),
    ("loss_rate", "REAL", lambda m: _get(m, "loss_rate")),
    ("mark_rate", "REAL", lambda m: _get(m, "mark_rate")),
    ("jain_fairness", "REAL", lambda m: _get(m, "jain_fairness")),
    ("rtt_mean_ms", "REAL", lambda m: _get(m, "rtt_ms", "mean")),
    ("fallbacks", "INTEGER", lambda m: _get(m, "fallbacks")),
    ("reproducible", "INTEGER", lambda m: _bool(_get(m, "reproducible"))),
)
FLAT_NAMES = tuple(c[0] for c in FLAT_COLUMNS)

_IDENTITY = ("key", "sweep", "scenario", "qdisc", "seed", "params", "variant", "agent")
_OUTCOME = ("status", "error", "started", "finished", "wall_s", "worker", "versions", "metrics")
_ROW = (*_IDENTITY, *_OUTCOME, *FLAT_NAMES)  # every column a run writes (attempts and id are the database's)


def _upsert_sql(columns: tuple[str, ...], attempts: str) -> str:
    """INSERT of one run row that replaces a 'failed' row of the same key and leaves an 'ok' one
    alone (a successful row is never overwritten); ``attempts``: the SET clause for the count."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in ("key", "attempts"))
    return (f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT(key) DO UPDATE SET {updates}, {attempts} WHERE runs.status = 'failed'")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  sweep TEXT,
  scenario TEXT NOT NULL,
  qdisc TEXT NOT NULL,
  seed INTEGER NOT NULL,
  params TEXT NOT NULL,
  variant TEXT NOT NULL DEFAULT '',
  agent TEXT,
  status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 1,
  started REAL,
  finished REAL,
  wall_s REAL,
  worker TEXT,
  versions TEXT,
  metrics TEXT,
  {", ".join(f"{name} {sqltype}" for name, sqltype, _ in FLAT_COLUMNS)}
);
CREATE INDEX IF NOT EXISTS runs_by_config ON runs (scenario, qdisc, status);
CREATE TABLE IF NOT EXISTS timeseries (
  key TEXT PRIMARY KEY REFERENCES runs(key),
  csv_gz BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
"""


@dataclass(frozen=True)
class RunRecord:
    """Everything one row holds, as the sweep hands it to the database."""

    key: str
    sweep: str
    scenario: str
    qdisc: str
    seed: int
    params: Mapping[str, str]
    variant: str
    agent: Mapping[str, Any] | None
    status: str
    error: str | None
    started: float
    finished: float
    worker: str
    versions: Mapping[str, Any]
    metrics: Mapping[str, Any] | None
    timeseries_gz: bytes | None = None


def connect(path: str | Path, create: bool = True) -> sqlite3.Connection:
    """Open the database (WAL, FULL sync, 30 s busy timeout), creating the schema if asked;
    ``create=False`` opens an existing database read-only (reports and exports change nothing,
    not even the journal mode)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"bad database path '{p}': it is a directory; give a file such as results/sweep.db")
    if not create and not p.is_file():
        raise ConfigError(f"no results database at {p}")
    if create:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"bad database path '{p}': {exc.strerror}") from None
    try:
        if create:
            conn = sqlite3.connect(p, timeout=30.0, isolation_level=None)  # explicit transactions only
        else:
            conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0,
                                   isolation_level=None)
    except sqlite3.Error as exc:
        raise ConfigError(f"bad database path '{p}': {exc}") from None
    try:
        if create:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        else:
            has = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='runs'").fetchone()
            if not has:
                raise ConfigError(f"{p} is not an aqm-llm results database (no runs table)")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(f"{p}: not a usable SQLite database ({exc})") from None
    except BaseException:
        conn.close()
        raise
    return conn


def schema_error(db_path: str | Path, exc: BaseException) -> ConfigError:
    """The one-line error for a database whose tables are not this version's."""
    return ConfigError(f"{db_path}: not an aqm-llm results database of this version "
                       f"({str(exc).splitlines()[-1] if str(exc) else type(exc).__name__})")


def json_cell(text: Any, column: str, key: str, db_path: str | Path) -> dict[str, Any]:
    """A JSON object cell (params, metrics), or a one-line ConfigError naming the damaged run."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{db_path}: run {key}: damaged {column} (not JSON)") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{db_path}: run {key}: damaged {column} (not a JSON object)")
    return value


def _ok_keys(conn: sqlite3.Connection) -> set[str]:
    return {k for (k,) in conn.execute("SELECT key FROM runs WHERE status = 'ok'")}


def ok_keys(path: str | Path, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` the database at ``path`` holds as 'ok', read-only (a dry run changes nothing)."""
    conn = connect(path, create=False)
    try:
        return _ok_keys(conn) & set(keys)
    except sqlite3.DatabaseError as exc:
        raise schema_error(path, exc) from None
    finally:
        conn.close()


def reusable_keys(source: str | Path, keys: Iterable[str], target: str | Path) -> set[str]:
    """Which of ``keys`` the database at ``source`` holds as 'ok' for ``target`` to copy
    (``ResultsDB.copy_from``, ``--reuse-from``), read-only. ConfigError, before anything is written,
    if ``source`` is ``target`` itself, missing, or lacks a column a copy needs."""
    src = Path(source)
    if _same_file(src, Path(target)):
        raise ConfigError(f"--reuse-from {src}: that is the database being written; give another one")
    conn = connect(src, create=False)
    try:  # every column a copy reads, so that an older or foreign database fails here
        conn.execute(f"SELECT {', '.join(_ROW)}, attempts FROM runs LIMIT 0")
        conn.execute("SELECT key, csv_gz FROM timeseries LIMIT 0")
        return _ok_keys(conn) & set(keys)
    except sqlite3.DatabaseError as exc:
        raise schema_error(src, exc) from None
    finally:
        conn.close()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links and bind mounts too
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


class ResultsDB:
    """The database as a sweep uses it: which keys are done, and record one run per transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = connect(self.path)

    def __enter__(self) -> "ResultsDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def done_keys(self, keys: Iterable[str] | None = None) -> set[str]:
        """Keys of successful runs (among ``keys`` if given)."""
        done = _ok_keys(self.conn)
        return done if keys is None else done & set(keys)

    def copy_from(self, source: str | Path, keys: Iterable[str]) -> int:
        """Copy from the database at ``source`` the 'ok' rows among ``keys`` that this one lacks as
        'ok', with their time series, in one transaction; return how many were copied.

        A copied row keeps everything it had (the sweep that wrote it, its worker, versions, wall
        time), so a table built here says where each run came from. Raises ConfigError for a
        source that is missing, this database itself, or not a results database of this version.
        """
        src_path = Path(source)
        wanted = sorted(reusable_keys(src_path, set(keys) - self.done_keys(), self.path))
        if not wanted:
            return 0
        src = connect(src_path, create=False)
        try:
            rows: list[tuple[Any, ...]] = []
            series: list[tuple[str, bytes]] = []
            for start in range(0, len(wanted), 500):  # SQLite's bound on '?' per statement
                chunk = wanted[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                rows += src.execute(f"SELECT {', '.join(_ROW)}, attempts FROM runs "
                                    f"WHERE status = 'ok' AND key IN ({marks})", chunk).fetchall()
                series += src.execute(f"SELECT key, csv_gz FROM timeseries WHERE key IN ({marks})",
                                      chunk).fetchall()
        except sqlite3.DatabaseError as exc:
            raise schema_error(src_path, exc) from None
        finally:
            src.close()
        if not rows:
            return 0
        copied = {r[0] for r in rows}
        sql = _upsert_sql((*_ROW, "attempts"), "attempts = runs.attempts + excluded.attempts")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            count = sum(self.conn.execute(sql, row).rowcount for row in rows)
            with_series = {k for k, _ in series}
            self.conn.executemany("INSERT OR REPLACE INTO timeseries (key, csv_gz) VALUES (?, ?)",
                                  [s for s in series if s[0] in copied])
            self.conn.executemany("DELETE FROM timeseries WHERE key = ?",
                                  [(k,) for k in copied - with_series])
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return count

    def record(self, rec: RunRecord) -> bool:
        """Write one run in its own transaction; False if an 'ok' row for the key was already there."""
        m = rec.metrics or {}
        flat = [fn(m) for _, _, fn in FLAT_COLUMNS] if rec.metrics else [None] * len(FLAT_COLUMNS)
        values = [rec.key, rec.sweep, rec.scenario, rec.qdisc, rec.seed, json.dumps(dict(rec.params), sort_keys=True),
                  rec.variant, json.dumps(dict(rec.agent)) if rec.agent else None,
                  rec.status, rec.error, rec.started, rec.finished, rec.finished - rec.started, rec.worker,
                  json.dumps(dict(rec.versions)), json.dumps(rec.metrics) if rec.metrics is not None else None, *flat]
        assert len(_ROW) == len(values)
        sql = _upsert_sql(_ROW, "attempts = runs.attempts + 1")
        for attempt in range(5):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    changed = self.conn.execute(sql, values).rowcount > 0
                    if changed:
                        if rec.timeseries_gz is not None:
                            self.conn.execute("INSERT OR REPLACE INTO timeseries (key, csv_gz) VALUES (?, ?)",
                                              (rec.key, rec.timeseries_gz))
                        else:
                            self.conn.execute("DELETE FROM timeseries WHERE key = ?", (rec.key,))
                    self.conn.execute("COMMIT")
                    return changed
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                # Another sweep writing the same file past the busy timeout: try again shortly.
                if "locked" not in str(exc) or attempt == 4:
                    raise
                time.sleep(1.0 + attempt)
        return False
