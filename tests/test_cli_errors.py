"""Bad input through the CLI: one line naming the bad value, exit status 2, no traceback, nothing
simulated (the start of the bad-input suite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aqm_llm import cli


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_run_refuses_a_timeout_that_is_not_positive(tmp_path: Path, value: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["run", "dumbbell", "--qdisc", "dualpi2", "--timeout", value, "-o", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "for timeout" in err[0] and "Traceback" not in err[0]
    assert not list(tmp_path.iterdir())  # nothing was simulated or written
