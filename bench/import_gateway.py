"""An SSCASN export registered by `starter.py import-registrations`, straight to the engine and
through the HTTP gateway (`--gateway`), in one run: rows/s, CPU per registration, and how long
after the file's end every journey stands admitted in the read model.

Both ways run the operator's command as the operator runs it, a process of its own with its
default 16 rows in flight, on a file of `size` applicants of the bench's example (the rules refuse
a few, alike in both ways). Straight to the engine it holds the stack's settings and the portal
identity's signing key (`--as`, `--key`); through the gateway it holds an API key and nothing of
the cluster, and the gateway (`serve.py`, a process of its own) signs with the portal key. Each
way registers into a keyed round of its own; legs go in ABBA order so that a drift in the
machine's load weighs on both.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import resource
import secrets
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

from apps.demo import EXAMPLE
from bench.common import ROOT, CpuMeter, console, print_table
from bench.gateway import (
    OUT,
    GatewayProcess,
    _process_cpu,
    _write_private,
    keyed_round,
    wait_admitted,
)
from bench.rounds import applicants
from client.api import RecruitmentApi
from client.csvio import REGISTRATION_COLUMNS
from domain.registration import Registration
from domain.signing import Keyring, Signer

WAYS = ("direct", "gateway")


def _export(path: Path, regs: list[Registration]) -> Path:
    """The registrations as an SSCASN export (REGISTRATION_COLUMNS), as the operator gets it."""
    columns = list(REGISTRATION_COLUMNS.all)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for reg in regs:
            data = reg.model_dump(mode="json")
            writer.writerow({c: data.get(c, "") for c in columns})
    return path


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (the operator's command)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _import(args: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    """Run starter.py import-registrations; its exit code and seconds taken."""
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "starter.py"),
            "import-registrations",
            *args,
            cwd=ROOT,
            env={**env, "COLUMNS": "120"},
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
        code = await proc.wait()
    return code, time.perf_counter() - started


def _statuses(numbers: Path) -> Counter:
    with numbers.open(encoding="utf-8") as f:
        return Counter(r["status"] for r in csv.DictReader(f))


async def run_import_gateway(ctx, size: int, repeat: int, seed: int, log_level: str) -> dict:
    """Every leg, then the comparison. `ctx` is bench.py's stack context."""
    client, settings, pool = ctx.app.client, ctx.settings, ctx.pool
    reporters = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["reporters"]
    keyring = Keyring(
        [Signer.generate(i) for i in sorted({i for v in reporters.values() for i in v})]
    )
    rounds = {way: keyed_round(f"I{way[0].upper()}", keyring) for way in WAYS}
    operator = rounds["direct"][0].reporters["operator"][0]
    portal = keyring.signers[rounds["direct"][0].reporters["portal"][0]]
    operator_api = RecruitmentApi(
        client, settings.task_queue, ctx.app.keys.pseudonym_key, keyring=keyring
    )
    for _, path in rounds.values():
        await operator_api.create_round(path, operator)
    legs = [w for i in range(repeat) for w in (WAYS if i % 2 == 0 else WAYS[::-1])]
    regs = applicants(rounds["direct"][0], size * repeat, seed)
    folder = OUT / "import-gateway"
    folder.mkdir(parents=True, exist_ok=True)
    portal_key = folder / "portal.key.json"
    _write_private(portal_key, json.dumps(portal.jwk()))
    api_key = secrets.token_urlsafe(32)
    api_key_file = folder / "operator.api-key"
    _write_private(api_key_file, api_key + "\n")
    direct_env = {k: v for k, v in os.environ.items() if not k.startswith("CASN_")} | {
        "CASN_DATA_DIR": str(settings.data_dir),
        "CASN_TEMPORAL_PORT": str(settings.temporal_port),
        "CASN_TEMPORAL_UI_PORT": str(settings.temporal_ui_port),
        "CASN_POSTGRES_PORT": str(settings.postgres_port),
        "CASN_TASK_QUEUE": settings.task_queue,
        "CASN_LOG_LEVEL": "WARNING",
    }
    gateway_env = {k: v for k, v in os.environ.items() if not k.startswith("CASN_")} | {
        "CASN_DATA_DIR": str(folder / "no-cluster"),
        "CASN_LOG_LEVEL": "WARNING",
    }
    results = {
        w: {"rows": 0, "seconds": 0.0, "statuses": Counter(), "cpu": Counter(), "at_rest": 0.0}
        for w in WAYS
    }
    done: Counter = Counter()
    registered: Counter = Counter()

    async with GatewayProcess(settings, portal, operator, api_key, log_level) as gw:
        for k, way in enumerate(legs):
            config, round_file = rounds[way]
            part = regs[size * done[way] : size * (done[way] + 1)]
            done[way] += 1
            export = _export(folder / f"leg-{k}-{way}.csv", part)
            errors = folder / f"leg-{k}-{way}.errors.csv"
            args = [str(round_file), str(export), "--errors", str(errors)]
            if way == "direct":
                args += ["--as", portal.identity, "--key", str(portal_key)]
                env = direct_env
            else:
                args += ["--gateway", gw.url, "--api-key-file", str(api_key_file)]
                env = gateway_env
            console.print(f"leg {k + 1}/{len(legs)}: {way}, {len(part)} rows ...")
            with CpuMeter(settings) as cpu:
                gw_cpu0, starter0 = _process_cpu(gw.pid()), _children_cpu()
                code, seconds = await _import(args, env, folder / f"leg-{k}-{way}.log")
                gw_cpu, starter_cpu = _process_cpu(gw.pid()) - gw_cpu0, _children_cpu() - starter0
            if code not in (0, 1):  # 1: some rows refused by the rules, as in both ways
                raise RuntimeError(
                    f"import-registrations ({way}) exited {code}: see {folder}/leg-{k}-{way}.log"
                )
            statuses = _statuses(errors.with_name(f"{export.stem}.numbers.csv"))
            r = results[way]
            r["rows"] += len(part)
            r["seconds"] += seconds
            r["statuses"].update(statuses)
            deltas = cpu.deltas()
            r["cpu"].update(
                {
                    "operator's command": starter_cpu,
                    "worker (bench process)": deltas["worker"],
                    "Temporal server": deltas["temporal"],
                    "PostgreSQL": deltas["postgres"],
                    "gateway process": gw_cpu if way == "gateway" else 0.0,
                }
            )
            registered[way] += statuses["registered"]
            r["at_rest"] = max(
                r["at_rest"], await wait_admitted(pool, config.round_id, registered[way])
            )

    figures: dict = {}
    for way in WAYS:
        r = results[way]
        ok = r["statuses"]["registered"]
        rate = ok / r["seconds"] if r["seconds"] else 0.0
        cpu_ms = 1000 * sum(r["cpu"].values()) / max(ok, 1)
        rows = {
            "rows / registered / refused by the rules": (
                f"{r['rows']} / {ok} / {r['rows'] - ok - r['statuses']['repeat']}"
            ),
            "the command's time": f"{r['seconds']:.1f} s",
            "registered/s": f"{rate:.1f}",
            "then until every journey is admitted (read model)": f"{r['at_rest']:.1f} s",
            "CPU per registration, every process": f"{cpu_ms:.1f} ms",
            **{f"CPU: {k}": f"{v:.1f} s" for k, v in r["cpu"].items() if v},
        }
        print_table(f"import-registrations, {way}", rows)
        figures[way] = {**rows, "rate": rate, "cpu_ms": cpu_ms}
    d, g = figures["direct"], figures["gateway"]
    summary = {
        "rows per way": f"{size * repeat}" + (f" ({repeat} files of {size})" if repeat > 1 else ""),
        "order": ", ".join(legs),
        "through the gateway ÷ direct, registered/s": (
            f"{g['rate'] / d['rate']:.2f}" if d["rate"] else "n/a"
        ),
        "through the gateway ÷ direct, CPU per registration": (
            f"{g['cpu_ms'] / d['cpu_ms']:.2f}" if d["cpu_ms"] else "n/a"
        ),
    }
    print_table("import-registrations through the gateway against straight to the engine", summary)
    return {**figures, **summary}
