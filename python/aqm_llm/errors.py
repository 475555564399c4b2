"""Errors that the CLI turns into one line and a non-zero exit status."""


class ConfigError(ValueError):
    """Bad user input (unknown scenario, queue disc or parameter, or a bad value).

    The message is one line naming the bad input and what is allowed.
    """


class SimulationError(RuntimeError):
    """A scenario program failed; the message carries the tail of its stderr."""
