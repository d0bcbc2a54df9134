#!/usr/bin/env python3
"""The HTTP gateway: the service API, the applicant portal and the public announcements.

    python serve.py                       # the gateway alone (a deployment: workers run apart)
    python serve.py --with-worker --sample-round
                                          # one machine: also a worker and a sample round
                                          # (what `python3 run.py serve` runs)

Listens on CASN_HTTP_HOST:CASN_HTTP_PORT (127.0.0.1:8000). Exit codes: 0 stopped by a signal,
2 bad configuration, 3 a server could not be reached.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

cli = typer.Typer(help=__doc__, add_completion=False, pretty_exceptions_enable=False)


@cli.command()
def main(
    with_worker: Annotated[
        bool, typer.Option("--with-worker", help="Run a worker in the same process.")
    ] = False,
    sample_round: Annotated[
        bool,
        typer.Option("--sample-round", help="Create the sample round (embedded mode only)."),
    ] = False,
) -> None:
    """Run the gateway until Ctrl-C or SIGTERM."""
    from gateway.deps import GatewayConfigError
    from runtime.keys import InvalidKeyError

    try:
        code = asyncio.run(
            __import__("apps.serve", fromlist=["serve"]).serve(with_worker, sample_round)
        )
    except (GatewayConfigError, InvalidKeyError) as exc:
        print(f"bad configuration: {exc}", file=sys.stderr)
        code = 2
    except (OSError, RuntimeError) as exc:
        print(f"stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 3
    raise typer.Exit(code)


if __name__ == "__main__":
    cli()
