"""The worker: runs the workflows and activities on the embedded stack or a configured cluster.

python worker.py run          # until SIGTERM/SIGINT, then drains and exits
python worker.py migrate      # apply the read model's migrations as its schema's owner
python worker.py stop-stack   # stop the embedded servers this project started
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import typer

from apps.fleet import deliver_notifications, run_worker
from runtime.process import run_and_end

T = TypeVar("T")

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.command("run")
def run_command() -> None:
    """Run the worker until SIGTERM or SIGINT."""
    _outcome(lambda: asyncio.run(run_worker()))


def _outcome(body: Callable[[], T]) -> T:
    """Run a command: a bad setting or file exits 2 naming it, a server that cannot be started or
    reached stops it with one line and exit 3, never a traceback."""
    from runtime.embedded import StackError
    from runtime.keys import InvalidKeyError
    from runtime.outage import read_settings_or_none, stopped_line
    from runtime.probes import ProbePortError
    from runtime.settings import describe_settings_error, is_settings_error
    from runtime.transport import TransportError

    try:
        return body()
    except (ProbePortError, TransportError, InvalidKeyError) as exc:
        typer.echo(f"bad configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    except StackError as exc:  # a server that cannot start, or refuses TLS or the login
        typer.echo(f"stopped: {exc}", err=True)
        raise typer.Exit(3) from None
    except Exception as exc:
        if is_settings_error(exc):
            typer.echo(f"bad configuration: {describe_settings_error(exc)}", err=True)
            raise typer.Exit(2) from None
        settings = read_settings_or_none()
        stopped = stopped_line(exc, settings)
        if stopped is None:
            raise
        typer.echo(f"stopped: {stopped}", err=True)
        raise typer.Exit(3) from None


@app.command("migrate")
def migrate_command() -> None:
    """Apply the read model's pending migrations as the role that owns its schema.

    With CASN_DATABASE_URL set, the owner is CASN_DATABASE_MIGRATION_URL (its password in
    CASN_DATABASE_MIGRATION_PASSWORD_FILE); the workers and gateways, connecting as the runtime
    role, refuse to start on a schema that lacks a migration. Embedded, the stack migrates itself.
    """
    from runtime.embedded import migrate_read_model
    from runtime.settings import load_settings

    applied = _outcome(lambda: asyncio.run(migrate_read_model(load_settings())))
    typer.echo(
        f"applied {', '.join(applied)}" if applied else "the read model's schema is up to date"
    )


@app.command("deliver-notifications")
def deliver_notifications_command(
    once: bool = typer.Option(
        False, "--once", help="One pass, then exit (default: every 5 s until stopped)."
    ),
) -> None:
    """Hand undelivered notifications to the transport (a JSON-lines file under the data dir)."""
    _outcome(lambda: asyncio.run(deliver_notifications(once)))


@app.command("stop-stack")
def stop_stack_command() -> None:
    """Stop the embedded Temporal server and PostgreSQL that this project started."""
    from runtime.embedded import stop_stack
    from runtime.settings import load_settings

    lines = _outcome(lambda: stop_stack(load_settings()))
    for line in lines or ["nothing of ours was running"]:
        typer.echo(line)


if __name__ == "__main__":
    run_and_end(app)
