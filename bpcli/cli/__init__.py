"""The `bpcli` command line: a thin layer that parses, calls the library and renders.

One module per command group; this one builds the app and is the single place where
bpcli's errors become a message on stderr and an exit code (see bpcli.errors).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from bpcli import __version__
from bpcli.errors import EXIT_INTERRUPTED, EXIT_RUN_FAILED, BpcliError


def _debug() -> bool:
    return os.environ.get("BPCLI_DEBUG", "") not in ("", "0")


def main_process() -> bool:
    """False on the non-zero ranks of a torchrun job, which train but print nothing."""
    return int(os.environ.get("RANK", "0")) == 0


def _error(line: str) -> None:
    # Under torchrun every rank reports its own failure, so say which one speaks.
    rank = f"[rank {os.environ.get('RANK')}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
    sys.stderr.write(f"error: {rank}{line}\n")
    sys.stderr.flush()


_nothing_to_clean_up = False


def skip_teardown() -> None:
    """Called by a command whose every file is written and closed: its process may end
    without Python's teardown (see main)."""
    global _nothing_to_clean_up
    _nothing_to_clean_up = True


def _is_cli_signal(exc: BaseException) -> bool:
    # Typer (and the click it builds on, vendored in recent Typer releases) signals usage
    # errors and exits with its own exception types.
    return type(exc).__module__.split(".")[0] in ("typer", "click")


class _Group(TyperGroup):
    """Runs a command and turns what it raises into one message and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BpcliError as exc:
            if _debug():
                traceback.print_exc()
            for line in exc.lines():
                _error(line)
            raise typer.Exit(exc.exit_code)
        except KeyboardInterrupt:
            if _debug():
                traceback.print_exc()
            sys.stderr.write("interrupted\n")
            raise typer.Exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if _is_cli_signal(exc):
                raise  # usage errors, --help and exits belong to Typer
            # A bug in bpcli, or something it did not foresee.
            if _debug():
                traceback.print_exc()
            _error(
                f"unexpected {type(exc).__name__}: {exc} "
                "(run again with BPCLI_DEBUG=1 for the traceback, and please report it)"
            )
            raise typer.Exit(EXIT_RUN_FAILED)


app = typer.Typer(
    cls=_Group,
    name="bpcli",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bpcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run, see and speed up back-propagation experiments described in YAML configs.

    Exit codes: 0 success, 1 the run failed or diverged, 2 bad input (config, flags, files, device), 130 interrupted by Ctrl-C, 143 by SIGTERM.
    """


# Command modules register themselves on `app` when imported.
from bpcli.cli import train, sweep, check, explain, plot  # noqa: E402,F401


def main() -> None:
    """Entry point of the `bpcli` console script (and of `python -m bpcli`)."""
    try:
        app(prog_name="bpcli")
    except SystemExit as exc:
        if not _nothing_to_clean_up:
            raise
        # Tearing down matplotlib's modules and objects takes about 0.1 s, an eighth of
        # `bpcli plot`; a command with nothing left to flush or close ends the process now.
        sys.stdout.flush()
        sys.stderr.flush()
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        os._exit(code)
