"""`python -m bpcli` and the `bpcli` console script run the CLI."""

import signal
import sys


def main() -> None:
    """Run the CLI; a Ctrl-C while it loads (before a command notes signals itself, see
    bpcli.interrupts) ends it as interrupted, exit 130, rather than with a traceback, and
    one while Python shuts down, after the command ended, no longer changes its exit code.
    (One in the first few tenths of a second, while Python itself starts, is Python's.)"""
    try:
        from bpcli.cli import main as run

        run()
    except KeyboardInterrupt:  # before a command took over: while typer builds the commands, say
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    finally:
        # Python resets its own handlers to the default as it exits, and a signal in that
        # time (torch tears down for a while) would kill the process with the work done.
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)


if __name__ == "__main__":
    main()
