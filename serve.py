#!/usr/bin/env python3
"""The HTTP gateway: the service API, the applicant portal and the public announcements.

    python serve.py                       # the gateway alone (a deployment: workers run apart)
    python serve.py --with-worker --sample-round --with-codec
                                          # one machine: also a worker and the notification
                                          # deliverer, a sample round and the auditors' codec
                                          # server for the Temporal Web UI
                                          # (what `python3 run.py serve` runs)

Listens on CASN_HTTP_HOST:CASN_HTTP_PORT (127.0.0.1:8000). Exit codes: 0 stopped by a signal,
2 bad configuration, 3 a server could not be reached.

On one machine every identity of the sample round gets a key pair and an API key under
<data_dir>/keys/, made once and kept, so that a restart serves the same round: the API keys in
api-keys.local.toml (the services' side), their digests in api-keys.toml (the gateway's side).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from apps.demo import EXAMPLE
from client.api import RecruitmentApi
from domain.config import RoundConfig, parse_round_config
from domain.signing import Keyring, Signer
from gateway.app import create_app, open_gateway
from gateway.deps import api_key_digest
from runtime.files import open_private
from runtime.logs import get_logger
from runtime.process import run_and_end

log = get_logger("serve")
SAMPLE_ROUND_ID = "CPNS-CONTOH-PORTAL"


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a secret): one there before is narrowed to
    0600 before it is written."""
    with open_private(path, encoding="utf-8") as f:
        f.write(text)


def sample_identities(keys_dir: Path, identities: list[str]) -> tuple[Keyring, dict[str, str]]:
    """A key pair and an API key for each identity, made once under `keys_dir`: the key files
    as `starter.py keygen` writes them, the API keys in api-keys.local.toml (the services'
    side) and their digests in api-keys.toml (the gateway's side)."""
    signers = []
    for identity in identities:
        path = keys_dir / f"{identity}.key.json"
        if path.exists():
            signers.append(Signer.from_jwk(json.loads(path.read_text(encoding="utf-8"))))
        else:
            signer = Signer.generate(identity)
            _write_private(path, json.dumps(signer.jwk()))
            signers.append(signer)
    plain_path = keys_dir / "api-keys.local.toml"
    plain = tomllib.loads(plain_path.read_text(encoding="utf-8")) if plain_path.exists() else {}
    for identity in identities:
        plain.setdefault(identity, secrets.token_urlsafe(32))
    _write_private(
        plain_path, "".join(f"{json.dumps(i)} = {json.dumps(k)}\n" for i, k in plain.items())
    )
    _write_private(
        keys_dir / "api-keys.toml",
        "".join(f"{json.dumps(i)} = {json.dumps(api_key_digest(k))}\n" for i, k in plain.items()),
    )
    return Keyring(signers), plain


def sample_round(now: datetime, keyring: Keyring) -> tuple[RoundConfig, str]:
    """The example regency round with registration open from now for 14 days, later windows
    after it, and the sample identities' public keys."""
    import tomli_w

    doc = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    doc["round_id"] = SAMPLE_ROUND_ID
    doc["identities"] = keyring.public_keys()
    start = now - timedelta(minutes=1)
    days = [
        ("registration", 0, 14),
        ("administration", 14, 21),
        ("skd", 28, 42),
        ("skb", 49, 63),
        ("filing", 70, 84),
        ("latsar", 120, 400),
    ]
    for name, a, b in days:
        doc["schedule"][name] = {
            "opens": start + timedelta(days=a),
            "closes": start + timedelta(days=b),
        }
    doc["schedule"]["tmt"] = (start + timedelta(days=100)).date()
    text = tomli_w.dumps(doc)
    return parse_round_config(tomllib.loads(text), "sample round"), text


async def serve(with_worker: bool = False, sample: bool = False, with_codec: bool = False) -> int:
    """Run the gateway until SIGTERM/SIGINT; with the worker and the notification deliverer
    (worker.py deliver-notifications'), the sample round and the codec server (audit.py
    serve-codec's) on one machine."""
    from apps.fleet import (
        DeliveryProgress,
        build_worker,
        notifications_file,
        open_deliverer_pool,
        run_deliverer,
    )
    from runtime.app import open_app
    from runtime.db import open_pool
    from runtime.embedded import role_database_url
    from runtime.migrate import GATEWAY_ROLE, RUNTIME_ROLE
    from runtime.settings import load_settings

    settings = load_settings()
    # The gateway connects as the gateway's role, which may not rewrite the projections. A worker
    # in the same process needs the workers' role: the embedded stack has both, so the worker gets
    # a pool of its own; a configured database gives one role (CASN_DATABASE_URL), the workers'.
    own_worker_pool = with_worker and settings.embedded_postgres
    role = RUNTIME_ROLE if with_worker and not own_worker_pool else GATEWAY_ROLE
    # /metrics shows the SDK core's metrics too
    ctx = await open_app(settings, core_metrics=True, role=role)
    if sample:
        if not settings.embedded_temporal:
            log.error("the sample round is for the embedded mode only")
            return 2
        doc = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
        identities = sorted({i for ids in doc["reporters"].values() for i in ids})
        keys_dir = settings.data_dir / "keys"
        keyring, _ = sample_identities(keys_dir, identities)
        round_file = settings.data_dir / "serve" / "round.toml"
        if not round_file.exists():
            _, text = sample_round(datetime.now(UTC), keyring)
            round_file.parent.mkdir(parents=True, exist_ok=True)
            round_file.write_text(text, encoding="utf-8")
        api = RecruitmentApi(
            ctx.client, settings.task_queue, ctx.keys.pseudonym_key, keyring=keyring
        )
    codec = None
    if with_codec:
        from gateway.codec_server import (
            build_codec_server,
            create_codec_app,
            usage,
            uvicorn_server,
        )

        codec_config = build_codec_server(settings, ctx.keys)
        codec = uvicorn_server(
            create_codec_app(codec_config), settings.codec_host, settings.codec_port
        )
    gw = await open_gateway(ctx)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(gw),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            proxy_headers=False,  # the portal finds the client itself: gateway/clients.py
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    )
    # Our own SIGTERM/SIGINT handling stops the server (uvicorn would take the signals over).
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    # The worker and the deliverer write as the workers' role (the gateway's may not read the
    # notifications' messages); the deliverer has a pool of its own, its statements bounded.
    runtime_url = (
        role_database_url(settings, RUNTIME_ROLE) if own_worker_pool else ctx.stack.database_url
    )
    worker_pool = await open_pool(runtime_url, max_size=10) if own_worker_pool else gw.pool
    worker = await build_worker(ctx.client, settings, worker_pool) if with_worker else None
    deliverer_pool = await open_deliverer_pool(runtime_url) if with_worker else None
    delivering: asyncio.Task | None = None
    try:
        if worker is not None:
            await worker.__aenter__()
        if deliverer_pool is not None:
            delivering = asyncio.create_task(
                run_deliverer(deliverer_pool, settings, ctx.keys, stop, DeliveryProgress())
            )
        if sample:
            operator = doc["reporters"]["operator"][0]
            _, created = await api.create_round(round_file, operator)
            log.info("sample round", round_id=SAMPLE_ROUND_ID, created=created)
        serving = asyncio.create_task(server.serve())
        decoding = asyncio.create_task(codec.serve()) if codec is not None else None
        while codec is not None and decoding is not None and not codec.started:
            if decoding.done():
                raise OSError(f"the codec server cannot listen on {settings.codec_endpoint}")
            await asyncio.sleep(0.05)
        base = f"http://{settings.http_host}:{settings.http_port}"
        print(
            f"\nGateway on {base}\n"
            f"  portal (applicants)     {base}/\n"
            f"  announcements (public)  {base}/pengumuman\n"
            f"  service API (OpenAPI)   {base}/api/docs   {base}/openapi.json\n"
            + (
                f"  API keys of the sample services  {settings.data_dir / 'keys' / 'api-keys.local.toml'}\n"
                if sample
                else ""
            )
            + f"  Temporal Web UI         {ctx.stack.ui_url}\n"
            + (
                f"  notifications (file)    {notifications_file(settings)}\n"
                if delivering is not None
                else ""
            )
            + (f"{usage(settings, codec_config, ctx.stack.ui_url)}\n" if codec is not None else "")
            + "Stop with Ctrl-C.",
            flush=True,
        )
        stopping = asyncio.create_task(stop.wait())
        # The deliverer ends by itself only on an error that is not an outage (it logged it):
        # everything stops then, as `worker.py deliver-notifications` would.
        running = {serving, stopping} | ({delivering} if delivering is not None else set())
        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        stop.set()  # the deliverer ends after the notification in flight
        server.should_exit = True
        await serving
        if decoding is not None and codec is not None:
            codec.should_exit = True
            await decoding
        stopping.cancel()
        if delivering is not None:
            await delivering
    finally:
        if delivering is not None and not delivering.done():
            stop.set()
            with contextlib.suppress(Exception):
                await delivering
        if worker is not None:
            await worker.__aexit__(None, None, None)
        if deliverer_pool is not None:
            await deliverer_pool.close()
        if worker_pool is not gw.pool:
            await worker_pool.close()
        await gw.pool.close()
    return 0


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
    with_codec: Annotated[
        bool,
        typer.Option(
            "--with-codec",
            help="Also run the decode-only codec server for the Web UI (audit.py serve-codec).",
        ),
    ] = False,
) -> None:
    """Run the gateway until Ctrl-C or SIGTERM."""
    from pydantic import ValidationError

    from gateway.deps import GatewayConfigError
    from runtime.keys import InvalidKeyError
    from runtime.settings import describe_settings_error, is_settings_error
    from runtime.transport import TransportError

    try:
        code = asyncio.run(serve(with_worker, sample_round, with_codec))
    except (GatewayConfigError, InvalidKeyError, TransportError, ValidationError) as exc:
        # A settings error names each variable and hides keys and passwords.
        text = describe_settings_error(exc) if is_settings_error(exc) else str(exc)
        print(f"bad configuration: {text}", file=sys.stderr)
        code = 2
    except (OSError, RuntimeError) as exc:
        # A server that does not answer is named with its variable, as the other commands do
        # (runtime/outage.py); anything else keeps its type and message.
        from runtime.outage import read_settings_or_none, stopped_line

        line = stopped_line(exc, read_settings_or_none())
        print(f"stopped: {line or f'{type(exc).__name__}: {exc}'}", file=sys.stderr)
        code = 3
    raise typer.Exit(code)


if __name__ == "__main__":
    run_and_end(cli)
