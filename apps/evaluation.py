"""The round evaluation report (`starter.py evaluate ROUND --out DIR`): one self-contained HTML
page with inline SVG charts, and a CSV per table, from `auditing/evaluation.py`'s figures.

The same inputs give the same bytes: the charts are drawn by matplotlib's SVG backend with a
fixed hash salt (the ids of clip paths), text kept as text (`svg.fonttype` none, no embedded
glyph paths) and no creation date; the page states the last decision it counts, never the time
it was written. CSV cells are guarded against spreadsheet formulas as the announcements' are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from jinja2 import Environment, select_autoescape
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from temporalio.client import Client

from auditing.evaluation import (
    ALL,
    FUNNEL_STEPS,
    Evaluation,
    Section,
    Table,
    evaluation,
    read_model_facts,
    round_facts,
)
from client.csvio import csv_cell
from domain.skm import STAGE_LABELS
from runtime.files import open_private

# No display: the charts are only written as SVG (the figures are drawn without pyplot, so no
# GUI backend is ever asked for; Agg is what pyplot would take if anyone imported it).
matplotlib.use("Agg")

# --- charts ----------------------------------------------------------------------------------------

COLOURS = ("#1f5f8b", "#e07b39", "#3c9d5d", "#b8405e", "#7a5fa8", "#8c6d31", "#4b8f8c", "#777777")
RC = {
    "svg.fonttype": "none",  # text stays text: smaller, searchable, no glyph paths
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def svg(name: str, draw: Callable[[Figure], None], height: float = 3.0) -> str:
    """A chart drawn by `draw` as an inline <svg> element, the same bytes for the same figures."""
    with matplotlib.rc_context({**RC, "svg.hashsalt": f"casn-evaluation-{name}"}):
        fig = Figure(figsize=(7.5, height))
        draw(fig)
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = out.getvalue()
    start = text.index("<svg")
    return text[start:].replace("<svg ", f'<svg role="img" aria-label="{name}" ', 1)


def _bars(fig: Figure, labels: list[str], series: dict[str, list[float]], ylabel: str, **kw) -> Any:
    ax = fig.add_subplot()
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = [x + i * width - 0.4 + width / 2 for x in range(len(labels))]
        ax.bar(xs, values, width, label=name, color=COLOURS[i % len(COLOURS)])
    ax.set_xticks(
        range(len(labels)),
        labels,
        rotation=kw.get("rotation", 0),
        ha="right" if kw.get("rotation") else "center",
    )
    ax.set_ylabel(ylabel)
    if kw.get("counts"):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(series) > 1:
        ax.legend(frameon=False, fontsize=8)
    return ax


def _few(ax: Any, n: int) -> None:
    """Keep bars their width when there are only one or two of them."""
    if n < 3:
        ax.set_xlim(-0.75, 2.75)


def funnel_chart(section: Section) -> str:
    rows = section.tables[0].rows
    formasi = sorted({str(r[0]) for r in rows if r[0] != ALL})
    shown = [ALL, *formasi][:7]  # the whole round and the first formasi: the table has them all
    counts = {(str(r[0]), str(r[1])): float(r[3] or 0) for r in rows}
    steps = [s for s, _ in FUNNEL_STEPS]
    return svg(
        "funnel",
        lambda fig: _bars(
            fig,
            steps,
            {f: [counts[(f, s)] for s in steps] for f in shown},
            "applicants",
            rotation=30,
            counts=True,
        ),
        height=3.4,
    )


def durations_chart(section: Section) -> str:
    rows = section.tables[0].rows
    longest = max((float(r[3] or 0) for r in rows), default=0.0)
    unit, factor = next(
        (u, f)
        for u, f in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))
        if longest >= 2 * f or f == 1
    )
    return svg(
        "durations",
        lambda fig: _bars(
            fig,
            [str(r[0]) for r in rows],
            {
                "p50": [float(r[2] or 0) / factor for r in rows],
                "p95": [float(r[3] or 0) / factor for r in rows],
            },
            unit,
            rotation=30,
        ),
        height=3.4,
    )


def appeals_chart(section: Section) -> str:
    rows = [r for r in section.tables[0].rows if r[1] == ALL]
    outcomes = section.tables[0].columns[5:]

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        bottom = [0.0] * len(rows)
        for i, outcome in enumerate(outcomes):
            values = [float(r[5 + i] or 0) for r in rows]
            ax.barh([str(r[0]) for r in rows], values, left=bottom, label=outcome, color=COLOURS[i])
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_xlabel("sanggah filed")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(
            frameon=False, fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.25)
        )

    return svg("appeals", draw, height=2.4)


def registration_chart(section: Section) -> str:
    rows = section.tables[0].rows
    counts = [float(r[1] or 0) for r in rows]
    peak = counts.index(max(counts)) if counts else -1

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        colours = [COLOURS[1] if i == peak else COLOURS[0] for i in range(len(rows))]
        ax.bar(range(len(rows)), counts, 0.9, color=colours)
        _few(ax, len(rows))
        step = max(1, len(rows) // 8)
        ax.set_xticks(
            range(0, len(rows), step),
            [str(rows[i][0])[:16].replace("T", " ") for i in range(0, len(rows), step)],
            rotation=30,
            ha="right",
        )
        ax.set_ylabel("registrations per hour")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))

    return svg("registration", draw, height=3.2)


def panels_chart(section: Section) -> str:
    rows = section.tables[0].rows

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        alphas = [float(r[4]) if r[4] is not None else 0.0 for r in rows]
        labels = [f"{r[0]} {r[1]}" for r in rows]
        ax.bar(labels, alphas, 0.5, color=COLOURS[0])
        _few(ax, len(rows))
        for x, r in enumerate(rows):
            text = "undefined" if r[4] is None else f"{float(r[4]):.2f}"
            ax.annotate(text, (x, alphas[x]), ha="center", va="bottom", fontsize=8)
        ax.axhline(0, color="#333333", linewidth=0.8)
        ax.set_ylim(min(-0.2, *alphas) - 0.05, 1.1)
        ax.set_ylabel("Krippendorff's alpha (interval)")

    return svg("panels", draw, height=2.6)


def bias_chart(section: Section) -> str:
    """Each panellist's bias in score points (a z-score is often undefined: fewer than 3
    panellists); red where |z| >= 2. A panellist who never sat with another has no bar."""
    rows = [r for r in section.tables[1].rows if r[4] is not None]

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.barh(
            [f"{r[0]} {r[1]} {r[2]}" for r in rows],
            [float(r[4]) for r in rows],
            color=[
                COLOURS[3] if r[5] is not None and abs(float(r[5])) >= 2 else COLOURS[0]
                for r in rows
            ],
        )
        ax.axvline(0, color="#333333", linewidth=0.8)
        ax.set_xlabel("bias: points from the co-panellists' mean (red: |z| of 2 or more)")

    return svg("bias", draw, height=max(2.0, 0.3 * len(rows) + 1))


def ikm_chart(section: Section) -> str:
    rows = [r for r in section.tables[0].rows if r[1] == ALL]

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.bar(
            [STAGE_LABELS.get(str(r[0]), str(r[0])) for r in rows],
            [float(r[3] or 0) for r in rows],
            0.5,
            color=COLOURS[2],
        )
        for bound, band in ((88.31, "A"), (76.61, "B"), (65.0, "C")):
            ax.axhline(bound, color="#999999", linewidth=0.6, linestyle="--")
            ax.text(
                1.0,
                bound,
                f" {band} from {bound:.2f}",
                va="center",
                fontsize=7,
                transform=ax.get_yaxis_transform(),
            )
        ax.set_ylim(25, 100)
        ax.set_xlim(-0.75, max(len(rows), 3) - 0.25)  # a bar keeps its width with one stage
        ax.set_ylabel("IKM")

    return svg("ikm", draw, height=2.8)


def optimalisasi_chart(section: Section) -> str:
    rows = section.tables[0].rows

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        labels = [str(r[0]) for r in rows]
        filled = [float(r[10] or 0) for r in rows]
        empty = [float(r[11] or 0) for r in rows]
        ax.bar(labels, filled, 0.6, label="seats filled", color=COLOURS[0])
        ax.bar(labels, empty, 0.6, bottom=filled, label="seats left empty", color=COLOURS[1])
        _few(ax, len(rows))
        ax.set_ylabel("seats")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))

    return svg("optimalisasi", draw, height=2.8)


CHARTS: dict[str, list[Callable[[Section], str]]] = {
    "funnel": [funnel_chart],
    "durations": [durations_chart],
    "appeals": [appeals_chart],
    "registration": [registration_chart],
    "panels": [panels_chart, bias_chart],
    "ikm": [ikm_chart],
    "optimalisasi": [optimalisasi_chart],
}


def charts_of(section: Section) -> list[str]:
    """The section's charts; none where there is nothing to draw (the table says so)."""
    if not any(t.rows for t in section.tables):
        return []
    return [chart(section) for chart in CHARTS.get(section.key, [])]


# --- files -------------------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A cell as text: numbers as Python prints them (never guarded: a number is no formula)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return str(value)


def csv_bytes(table: Table) -> str:
    """The table as CSV (CRLF line ends, as spreadsheets expect); text cells guarded."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_cell(c) for c in table.columns])
    for row in table.rows:
        writer.writerow(
            [cell_text(v) if isinstance(v, int | float) else csv_cell(cell_text(v)) for v in row]
        )
    return out.getvalue()


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Round evaluation: {{ e.round_id }}</title>
<style>
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2rem auto; max-width: 64rem;
       padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; border-bottom: 2px solid #1f5f8b; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 .3rem; }
nav ol { columns: 2; }
table { border-collapse: collapse; font-size: .85rem; margin: .4rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: .2rem .5rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eef3f7; }
figure.chart { margin: .5rem 0; }
figure.chart svg { max-width: 100%; height: auto; }
p.note { background: #fff6e0; border-left: 4px solid #e0a030; padding: .4rem .8rem; }
.meta { color: #555; font-size: .9rem; }
p.explains { color: #444; font-size: .85rem; }
a.csv { font-size: .8rem; }
</style>
</head>
<body>
<h1>Round evaluation: {{ e.round_id }}</h1>
<p class="meta">{{ e.instansi }} · times in {{ e.timezone }} · {{ basis }}</p>
<nav><ol>{% for s in e.sections %}<li><a href="#{{ s.key }}">{{ s.heading }}</a></li>{% endfor %}</ol></nav>
{% for s in e.sections %}
<section id="{{ s.key }}">
<h2>{{ s.heading }}</h2>
<p class="summary">{{ s.summary }}</p>
{% if s.explains %}<p class="explains">{{ s.explains }}</p>{% endif %}
{% if s.note %}<p class="note">{{ s.note }}</p>{% endif %}
{% for chart in charts[s.key] %}<figure class="chart">{{ chart | safe }}</figure>
{% endfor %}
{% for t in s.tables %}
<h3>{{ t.name }} <a class="csv" href="{{ t.name }}.csv">{{ t.name }}.csv</a></h3>
{% if t.rows %}
<table>
<thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for v in row %}{% if v is number %}<td class="n">{{ cell(v) }}</td>{% else %}<td>{{ cell(v) }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% else %}<p>None.</p>{% endif %}
{% endfor %}
</section>
{% endfor %}
</body>
</html>
"""


@dataclass
class Written:
    """What `write_report` wrote."""

    index: Path
    csvs: list[Path]
    evaluation: Evaluation


def render(e: Evaluation, basis: str) -> str:
    """The report page."""
    env = Environment(autoescape=select_autoescape(default=True), keep_trailing_newline=True)
    return env.from_string(PAGE).render(
        e=e,
        basis=basis,
        charts={s.key: charts_of(s) for s in e.sections},
        cell=cell_text,
    )


def write_report(e: Evaluation, out_dir: Path, basis: str) -> Written:
    """Write index.html and one CSV per table into `out_dir` (created if missing), each readable
    by its owner alone (runtime/files.py), as the project's other files about applicants are:
    panel_flags names applicants by registration number with a panellist's score of each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csvs = []
    for s in e.sections:
        for t in s.tables:
            path = out_dir / f"{t.name}.csv"
            with open_private(path, encoding="utf-8", newline="") as f:
                f.write(csv_bytes(t))
            csvs.append(path)
    index = out_dir / "index.html"
    with open_private(index, encoding="utf-8") as f:
        f.write(render(e, basis))
    return Written(index, csvs, e)


async def evaluate(
    client: Client,
    database_url: str,
    round_id: str,
    out_dir: Path,
    outlier_margin: float | None = None,
) -> Written:
    """Compute the round's evaluation from its histories and the read model, and write it."""
    import asyncpg

    facts = await round_facts(client, round_id)
    conn = await asyncpg.connect(database_url)
    try:
        read = await read_model_facts(conn, round_id)
    finally:
        await conn.close()
    e = evaluation(facts, read, outlier_margin)
    decided = [d.at for d in facts.decisions] + [d.at for j in facts.journeys for d in j.decisions]
    basis = (
        f"computed from the histories of the round and {len(facts.journeys)} journeys (replayed "
        f"against the current code) and the read model; last decision counted "
        f"{max(decided).isoformat(timespec='seconds') if decided else 'none'}"
    )
    return write_report(e, out_dir, basis)
