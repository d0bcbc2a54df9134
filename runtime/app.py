"""What every entry point needs: settings, logs, the stack, keys and a connected client."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client

from runtime.connection import connect
from runtime.embedded import StackInfo, ensure_stack
from runtime.keys import Keys, load_or_create_keys
from runtime.logs import configure_logging
from runtime.migrate import RUNTIME_ROLE
from runtime.settings import Settings, load_settings
from runtime.telemetry import install_telemetry


@dataclass
class App:
    """A connected application context."""

    settings: Settings
    stack: StackInfo
    keys: Keys
    client: Client


async def open_app(
    settings: Settings | None = None, *, core_metrics: bool = False, role: str = RUNTIME_ROLE
) -> App:
    """Load settings, configure logs and the SDK's runtime (runtime/telemetry.py; with
    `core_metrics` for a process serving /metrics), load the keys, ensure the stack (embedded or
    configured) and connect. `role` is the read model's role the process connects as (a gateway:
    GATEWAY_ROLE), checked at start (runtime/migrate.py).

    The keys come first: a deployment without its payload key (runtime/keys.py) stops with
    MissingKeyError before anything is started or connected.
    """
    settings = settings or load_settings()
    configure_logging(settings)
    install_telemetry(settings, core_metrics=core_metrics)  # before the first client connects
    keys = load_or_create_keys(settings)
    keys.require("payload_key")
    stack = await ensure_stack(settings, role=role)
    client = await connect(settings, stack, keys)
    return App(settings=settings, stack=stack, keys=keys, client=client)
