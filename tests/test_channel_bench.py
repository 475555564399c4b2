"""Smoke test of `aqm-llm bench channel` (a few hundred round trips per transport)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aqm_llm.bench import channel as bench


def test_bench_channel_quick(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "bench-channel.md"
    assert bench.main(["--quick", "--slow-ms", "10", "--save", str(out)]) == 0
    text = capsys.readouterr().out
    assert "machine:" in text and "command: aqm-llm bench channel --quick" in text
    for transport in ("shm (aqm-llm channel)", "ZeroMQ REQ/REP", "Unix-domain stream socket",
                      "busy-poll"):
        assert transport in text
    saved = out.read_text()
    assert bench.SECTION_BEGIN in saved and "round trips/s" in saved
    # Saving again replaces the section instead of appending a second one.
    bench.save_section(out, "new table")
    saved = out.read_text()
    assert saved.count(bench.SECTION_BEGIN) == 1 and "new table" in saved
