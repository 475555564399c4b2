"""Run one scenario simulation (placeholder, filled below)."""

def run(*args, **kwargs):  # pragma: no cover
    raise NotImplementedError
