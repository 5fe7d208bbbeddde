"""The evidence as one self-contained HTML page: the same sections as the markdown, with charts.

Plotly's JavaScript is inlined once per page, so the page opens from a file, offline, and
loads nothing from the network; the reports it names are links a browser follows (the
server's report route, or presigned S3 URLs).
"""

from __future__ import annotations

import html
import re

from fearless.evidence.charts import drift_figure, load_figure
from fearless.evidence.history import drift_bars, history_path, read_history
from fearless.evidence.model import Evidence
from fearless.evidence.sections import Bullets, Chart, Section, Table
from fearless.loadtest.simulation import SimulationOutcome

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; color: #1b2631; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #d5d8dc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f4f6f7; }
code { background: #f4f6f7; padding: 0 0.2em; }
td strong { color: #c0392b; }
.note { color: #717d7e; font-style: italic; }
"""
# A code span, or a markdown link to a report (matched in one pass, so a log line quoted in a
# code span never becomes a link).
CODE_OR_LINK = re.compile(r"`([^`]+)`|\[([^\]]+)\]\(([^)\s]+)\)")
SAFE_URL = re.compile(r"(https?://|(?!//)[^:]*$)")  # http(s), or a name beside the page
BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _history(csv_prefix: str):
    """A run's history, or a sentence saying why it cannot be drawn."""
    path = history_path(csv_prefix)
    try:
        history = read_history(path)
    except ValueError as exc:
        return str(exc)
    return history if history is not None else f"No per-second history at {path}."


def build_charts(ev: Evidence, simulations: list[SimulationOutcome]) -> dict[str, object | str]:
    """Each chart slot's figure, or a sentence saying why there is none."""
    charts: dict[str, object | str] = {}
    runs = [("candidate", ev.load.result), ("champion", ev.load.champion)]
    histories = [(name, _history(r.csv_prefix)) for name, r in runs if r]
    drawn = [(name, h) for name, h in histories if not isinstance(h, str)]
    charts["load"] = load_figure(drawn, "Load test over time") if drawn else histories[0][1]
    bars = drift_bars(ev.drift.scores)
    charts["drift"] = (
        drift_figure(bars, "Drift score per column against its threshold") if bars
        else "No column was scored."
    )  # fmt: skip
    for s in simulations:
        history = _history(s.result.csv_prefix)
        charts[f"simulation-{s.number}"] = (
            history if isinstance(history, str)
            else load_figure([(f"simulation {s.number}", history)], f"Simulation {s.number} over time")
        )  # fmt: skip
    return charts


def _inline(text: str) -> str:
    """Markdown's inline marks as HTML: `code`, **bold** and [report](url) links."""

    def mark(match: re.Match) -> str:
        if match[1] is not None:
            return f"<code>{match[1]}</code>"
        label, url = match[2], match[3]
        if not SAFE_URL.match(html.unescape(url)):
            return match[0]
        return f'<a href="{url.replace(chr(34), "&quot;")}"><code>{label}</code></a>'

    return BOLD.sub(r"<strong>\1</strong>", CODE_OR_LINK.sub(mark, html.escape(text, quote=False)))


def _table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


class _ChartWriter:
    """Turns figures into HTML, inlining plotly.js with the first one only."""

    def __init__(self) -> None:
        self.script_written = False

    def __call__(self, key: str, chart: object | str) -> str:
        if isinstance(chart, str):
            return f'<p class="note">{html.escape(chart)}</p>'
        import plotly.io as pio

        out = pio.to_html(
            chart, full_html=False, include_plotlyjs=not self.script_written,
            div_id=f"chart-{key}", config={"displaylogo": False},
        )  # fmt: skip
        self.script_written = True
        return out


def render_html(sections: list[Section], charts: dict[str, object | str], title: str) -> str:
    write_chart = _ChartWriter()
    body: list[str] = []
    for section in sections:
        level = min(section.level, 6)
        body.append(f"<h{level}>{html.escape(section.title)}</h{level}>")
        for block in section.blocks:
            if isinstance(block, Chart):
                body.append(write_chart(block.key, charts.get(block.key, "No chart.")))
            elif isinstance(block, Bullets):
                items = "".join(f"<li>{_inline(item)}</li>" for item in block.items)
                body.append(f"<ul>{items}</ul>")
            elif isinstance(block, Table):
                body.append(_table(block))
            else:
                body.append(f"<p>{_inline(block)}</p>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
