"""bpcli's exception types and the exit codes the CLI maps them to."""

from __future__ import annotations

# Exit codes, documented in docs/run-directory.md. The CLI turns exceptions into these in one place.
EXIT_RUN_FAILED = 1  # the run started but did not complete (diverged, failed)
EXIT_USAGE = 2  # bad input: config, flags, files, devices; nothing was trained
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); SIGTERM gives 143 (128 + 15)


class BpcliError(Exception):
    """An error with a message for the user: what is wrong and how to fix it."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def lines(self) -> list[str]:
        """The lines to print on stderr, one per problem."""
        return [self.message]


class ConfigError(BpcliError):
    """One or more problems with a config file or its overrides, reported together."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("; ".join(f"{source}: {p}" for p in problems))

    def lines(self) -> list[str]:
        return [f"{self.source}: {p}" for p in self.problems]


class DataError(BpcliError):
    """The data cannot be used: a missing file or column, a bad cell, too few rows."""


class DeviceError(BpcliError):
    """The requested device does not exist on this machine."""


class RunDirError(BpcliError):
    """The run directory cannot be created, written, or read."""


class RunDirBusy(RunDirError):
    """Another bpcli process is writing the run directory."""


class RunFailed(BpcliError):
    """Training started but did not complete; the run directory says how far it got."""

    exit_code = EXIT_RUN_FAILED


class RunInterrupted(BpcliError):
    """A signal stopped the run; it was checkpointed and can be resumed."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum
