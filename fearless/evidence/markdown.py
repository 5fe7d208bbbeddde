"""The evidence sections as markdown: the Prefect artifact, `evidence.md`, the approval form."""

from __future__ import annotations

from fearless.evidence.sections import Bullets, Chart, Section, Table


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def render_markdown(sections: list[Section]) -> str:
    lines: list[str] = []
    for section in sections:
        lines += ["#" * section.level + " " + section.title, ""]
        for block in section.blocks:
            if isinstance(block, Chart):
                continue
            if isinstance(block, Bullets):
                lines += [f"- {item}" for item in block.items]
            elif isinstance(block, Table):
                lines += [_row(block.header), "|" + "---|" * len(block.header)]
                lines += [_row(row) for row in block.rows]
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
