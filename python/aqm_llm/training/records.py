"""Reading the queue disc's record files (format: docs/record-format.md).

    meta, records = read_records("run.rec")
    records["request"][r]          # REQUEST_DTYPE, exactly as the channel carried it
    records["teacher"][r, t]       # REPLY_DTYPE of teacher t (meta["teachers"][t])
    records["h"]["actor"][r]       # -2 fallback, -1 agent, >= 0 teacher index

A run killed mid-write may leave a partial last record: it is ignored.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from aqm_llm.channel import REPLY_DTYPE, REQUEST_DTYPE

MAGIC = b"AQMLLMRC"
FORMAT = "aqm-llm-record"
SUPPORTED_VERSIONS = (1,)
ACTOR_FALLBACK = -2
ACTOR_AGENT = -1


class RecordError(ValueError):
    """A file that is not a usable record file (wrong magic, version or layout)."""


def read_header(path: str | Path) -> tuple[dict[str, Any], int]:
    """(header JSON, offset of the first record)."""
    with open(path, "rb") as f:
        magic = f.read(8)
        if magic != MAGIC:
            raise RecordError(f"{path}: not a record file (magic {magic!r})")
        version, offset = struct.unpack("<II", f.read(8))
        if version not in SUPPORTED_VERSIONS:
            raise RecordError(f"{path}: record format version {version}, this code reads "
                              f"{SUPPORTED_VERSIONS}")
        meta: dict[str, Any] = json.loads(f.read(offset - 16))
    if meta.get("format") != FORMAT:
        raise RecordError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta, offset


def record_dtype(meta: dict[str, Any]) -> np.dtype[Any]:
    h = meta["record_header"]
    header = np.dtype({"names": [x[0] for x in h], "formats": [x[1] for x in h],
                       "offsets": [x[2] for x in h], "itemsize": meta["record_header_size"]})
    rec = np.dtype([("h", header), ("request", REQUEST_DTYPE), ("agent_reply", REPLY_DTYPE),
                    ("teacher", REPLY_DTYPE, (len(meta["teachers"]),))])
    if rec.itemsize != meta["record_size"]:
        raise RecordError(f"record size {meta['record_size']} in the file, {rec.itemsize} in this "
                          "build's message layout: the record comes from another protocol version")
    if meta.get("request_size") not in (None, REQUEST_DTYPE.itemsize):
        raise RecordError(f"request size {meta['request_size']} != {REQUEST_DTYPE.itemsize}")
    return rec


def read_records(path: str | Path) -> tuple[dict[str, Any], np.ndarray]:
    """(header JSON, structured array of the complete records)."""
    meta, offset = read_header(path)
    rec = record_dtype(meta)
    n = (Path(path).stat().st_size - offset) // rec.itemsize
    return meta, np.fromfile(path, dtype=rec, count=n, offset=offset)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
