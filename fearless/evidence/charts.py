"""The evidence page's charts (Plotly figures); plotly is imported only when a page is built."""

from __future__ import annotations

from fearless.drift.verdict import ColumnDrift
from fearless.evidence.history import LoadHistory

PERCENTILES = (("p50_ms", "p50", "#7fb3d5"), ("p95_ms", "p95", "#2471a3"))
PERCENTILES += (("p99_ms", "p99", "#1b2631"),)
LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50, "b": 40}}


def load_figure(runs: list[tuple[str, LoadHistory]], title: str):
    """Latency (p50/p95/p99), throughput and users over time; one column per run, side by side
    with shared axes so the candidate and the champion read on the same scale."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=3, cols=len(runs), shared_xaxes=True, shared_yaxes=True,
        column_titles=[name for name, _ in runs], row_heights=[0.5, 0.3, 0.2],
        vertical_spacing=0.06, horizontal_spacing=0.04,
    )  # fmt: skip
    for col, (name, history) in enumerate(runs, start=1):
        first = col == 1
        for field, label, color in PERCENTILES:
            fig.add_trace(
                go.Scatter(x=history.seconds, y=getattr(history, field), name=label,
                           legendgroup=label, showlegend=first, line={"color": color},
                           meta=name),
                row=1, col=col,
            )  # fmt: skip
        for field, label, color in (
            ("rps", "requests/s", "#1e8449"),
            ("failures_per_s", "failures/s", "#c0392b"),
        ):
            fig.add_trace(
                go.Scatter(x=history.seconds, y=getattr(history, field), name=label,
                           legendgroup=label, showlegend=first, line={"color": color}, meta=name),
                row=2, col=col,
            )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=history.seconds, y=history.users, name="users", legendgroup="users",
                       showlegend=first, line={"color": "#7d3c98", "shape": "hv"}, meta=name),
            row=3, col=col,
        )  # fmt: skip
        fig.update_xaxes(title_text="seconds since start", row=3, col=col)
    fig.update_yaxes(title_text="latency ms", row=1, col=1)
    fig.update_yaxes(title_text="per second", row=2, col=1)
    fig.update_yaxes(title_text="users", row=3, col=1)
    fig.update_layout(title=title, height=620, **LAYOUT)
    return fig


def drift_figure(bars: list[ColumnDrift], title: str):
    """Each column's drift score as a bar, its threshold as a tick: a bar past its tick drifted."""
    import plotly.graph_objects as go

    names = [bar.column for bar in bars]
    fig = go.Figure(
        [
            go.Bar(
                x=names, y=[bar.score for bar in bars], name="score",
                marker_color=["#c0392b" if bar.drifted else "#2471a3" for bar in bars],
                customdata=[bar.method for bar in bars],
                hovertemplate="%{x}: %{customdata} %{y:.4f}<extra></extra>",
            ),
            go.Scatter(
                x=names, y=[bar.threshold for bar in bars], name="threshold", mode="markers",
                marker={"symbol": "line-ew-open", "size": 36, "color": "#1b2631", "line": {"width": 3}},
            ),
        ]
    )  # fmt: skip
    fig.update_layout(title=title, height=380, yaxis_title="drift score", **LAYOUT)
    return fig
