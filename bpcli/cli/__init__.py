"""The `bpcli` command line: a thin layer that parses, calls the library and renders.

One module per command group, registered explicitly below; this module builds the app
and is the single place where bpcli's errors become a message on stderr and an exit
code (see bpcli.errors).
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from bpcli import interrupts
from bpcli.cli import animate, check, explain, export, plot, runs, sweep, train
from bpcli.errors import EXIT_INTERRUPTED, EXIT_RUN_FAILED, BpcliError
from bpcli.symbols import plain


def _debug() -> bool:
    return os.environ.get("BPCLI_DEBUG", "") not in ("", "0")


def _error(line: str) -> None:
    # Under torchrun every rank reports its own failure, so say which one speaks.
    rank = f"[rank {os.environ.get('RANK')}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
    try:
        sys.stderr.write(plain(f"error: {rank}{line}\n", getattr(sys.stderr, "encoding", None)))
        sys.stderr.flush()
    except BrokenPipeError:  # nobody reads stderr any more: the exit code still tells
        pass


def _is_cli_signal(exc: BaseException) -> bool:
    # Typer (and the click it builds on, vendored in recent Typer releases) signals usage
    # errors and exits with its own exception types.
    return type(exc).__module__.split(".")[0] in ("typer", "click")


def _plain_flags(params: list[Any]) -> list[Any]:
    """Show a flag (--force, --quiet, --help) in --help as the flag alone: it takes no value,
    but recent Typer releases print `<bool>` beside it, as if it did."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


def _reflowed(help: str | None) -> str | None:
    """A docstring with each paragraph on one line, so that --help wraps it at the terminal's
    width alone. Typer's rich help joins the lines of a description's first paragraph but prints
    the others with the line breaks of the source file, which a narrower or wider terminal then
    breaks again mid-sentence. A paragraph that starts with click's \\b keeps its lines."""
    if not help:
        return help
    paragraphs = inspect.cleandoc(help).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n")) for p in paragraphs)


class _Command(TyperCommand):
    """A command whose flags read as flags, and whose description wraps at the terminal's width, in --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _reflowed(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


class _Group(TyperGroup):
    """Runs a command and turns what it raises into one message and an exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _reflowed(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))

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
        except OSError as exc:
            # A file that cannot be written or read outside a run (a full disk while resuming).
            if _debug():
                traceback.print_exc()
            where = f"{exc.filename}: " if exc.filename else ""
            _error(f"{where}{exc.strerror or exc}; free some space or fix the permissions, then run it again")
            raise typer.Exit(EXIT_RUN_FAILED)
        except Exception as exc:
            if _is_cli_signal(exc):
                raise  # usage errors, --help and exits belong to Typer
            if interrupts.received:  # a Ctrl-C cut short an import or a write: its error is no bug
                if _debug():
                    traceback.print_exc()
                sys.stderr.write("interrupted\n")
                raise typer.Exit(EXIT_INTERRUPTED)
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
        from bpcli.rundir.files import bpcli_version

        typer.echo(f"bpcli {bpcli_version()}")
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


# Every command, in the order `bpcli --help` lists them.
app.command(cls=_Command)(train.train)
app.command("config", cls=_Command)(train.show_config)
app.command(cls=_Command)(train.rerun)
app.command(cls=_Command)(sweep.sweep)
app.command(cls=_Command)(check.check)
app.command(cls=_Command)(explain.explain)
app.command(cls=_Command)(plot.plot)
app.command(cls=_Command)(plot.compare)
app.command(cls=_Command)(animate.animate)
app.command(cls=_Command)(runs.runs)
app.command(cls=_Command)(export.export)


class _Stdout:
    """sys.stdout that goes quiet when its reader leaves (`bpcli train … | head`): the run
    goes on to its end and records the truth, and nothing more is printed, as with `git log | head`.
    On a terminal that cannot show a symbol (latin-1, ASCII), the symbol is spelled in ASCII."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(plain(text, getattr(self._stream, "encoding", None)))
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()

    def _silence(self) -> None:
        # What is still buffered, and whatever comes later, goes to /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _is_a(exc: BaseException, name: str) -> bool:
    """Whether exc is one of click's exceptions called `name` (click itself, or the copy that
    newer Typer carries inside it, whose module path is private)."""
    return any(cls.__name__ == name and "click" in cls.__module__ for cls in type(exc).__mro__)


def main() -> None:
    """Entry point of the `bpcli` console script (and of `python -m bpcli`)."""
    sys.stdout = _Stdout(sys.stdout)  # type: ignore[assignment]
    try:
        # Not standalone: a usage error (an unknown flag, a bad value) comes back here, to be
        # told in one line like every other error, instead of click's usage box.
        code = app(prog_name="bpcli", standalone_mode=False)
    except typer.Abort:
        sys.stderr.write("interrupted\n")
        code = EXIT_INTERRUPTED
    except Exception as exc:
        if not _is_a(exc, "ClickException"):
            raise
        where = getattr(getattr(exc, "ctx", None), "command_path", None)
        help_hint = f" (see {where} --help)" if where and _is_a(exc, "UsageError") else ""
        _error(f"{exc.format_message()}{help_hint}")  # type: ignore[attr-defined]
        code = exc.exit_code  # type: ignore[attr-defined]
    except BrokenPipeError:  # written past the wrapper (a stream that bypasses sys.stdout)
        sys.stdout._silence()  # type: ignore[attr-defined]
        code = 0
    sys.exit(code if isinstance(code, int) else 0)
