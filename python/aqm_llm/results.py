"""Results of sweeps as pandas: ``load`` (one row per run), ``load_timeseries``, ``export`` (CSV/Parquet).

The database itself (schema, writes) is aqm_llm.resultsdb; its names are re-exported here.

    >>> import aqm_llm.results
    >>> df = aqm_llm.results.load("results.db", status="ok")
    >>> df.groupby(["scenario", "qdisc"])["l4s_sojourn_p99_ms"].mean()
"""

from __future__ import annotations

import gzip
import io
import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from aqm_llm.errors import ConfigError
from aqm_llm.resultsdb import FLAT_NAMES, ResultsDB, RunRecord, connect, json_cell, ok_keys, reusable_keys, schema_error

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FLAT_NAMES", "ResultsDB", "RunRecord", "connect", "export", "load", "load_timeseries", "ok_keys", "reusable_keys"]

_BASE = ("id", "key", "sweep", "scenario", "qdisc", "seed", "variant", "status", "error", "attempts",
         "started", "finished", "wall_s", "worker", "versions", "agent", "params")


def load(db_path: str | Path, *, status: str | None = None, metrics: bool = False) -> "pd.DataFrame":
    """One row per run: identity, status, timings, flat metrics, and each parameter as ``param.<name>``.

    ``status='ok'`` keeps successful runs only; ``metrics=True`` adds the full metrics as dicts.
    Parameter values stay the strings the program was given ("100Mbps"); a run that did not set a
    parameter has NaN there (the program's default applied).
    """
    import pandas as pd

    conn = connect(db_path, create=False)
    try:
        cols = [*_BASE, *FLAT_NAMES, *(("metrics",) if metrics else ())]
        where = " WHERE status = ?" if status else ""
        df = pd.read_sql_query(f"SELECT {', '.join(cols)} FROM runs{where} ORDER BY id", conn,
                               params=(status,) if status else None)
    except (sqlite3.Error, pd.errors.DatabaseError) as exc:
        raise schema_error(db_path, exc) from None
    finally:
        conn.close()
    params = [json_cell(p, "params", key, db_path) for p, key in zip(df["params"], df["key"])]
    names = sorted({k for p in params for k in p})
    for name in names:
        df[f"param.{name}"] = [p.get(name) for p in params]
    if metrics:
        df["metrics"] = [json_cell(m, "metrics", key, db_path) if isinstance(m, str) else None
                         for m, key in zip(df["metrics"], df["key"])]
    df["reproducible"] = df["reproducible"].astype("boolean")
    df["fallbacks"] = df["fallbacks"].astype("Int64")
    return df


def load_timeseries(db_path: str | Path, key: str) -> "pd.DataFrame | None":
    """The time series a run stored (columns as the scenario's CSV), or None."""
    import pandas as pd

    conn = connect(db_path, create=False)
    try:
        row = conn.execute("SELECT csv_gz FROM timeseries WHERE key = ?", (key,)).fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    return pd.read_csv(io.BytesIO(gzip.decompress(row[0])))


def export(db_path: str | Path, out: str | Path, *, with_metrics: bool = False) -> Path:
    """Write the runs as CSV or Parquet (by the file's extension); returns the path."""
    dest = Path(out)
    suffix = dest.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ConfigError(f"unknown export format '{dest.suffix or dest.name}'; allowed: .csv, .parquet")
    if dest.is_dir():
        raise ConfigError(f"bad output '{dest}': it is a directory; give a file name ending .csv or .parquet")
    df = load(db_path, metrics=with_metrics)
    if with_metrics:
        df["metrics"] = [json.dumps(m) if isinstance(m, dict) else None for m in df["metrics"]]
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            df.to_csv(dest, index=False)
        else:
            df.to_parquet(dest, index=False)
    except OSError as exc:
        raise ConfigError(f"bad output '{dest}': {exc.strerror or exc}") from None
    return dest
