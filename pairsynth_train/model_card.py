"""README.md model cards for exported toy-zoo models."""

from __future__ import annotations

import json
from pathlib import Path


def write_model_card(out_dir: Path, title: str, sections: dict[str, str | dict]) -> Path:
    """Write ``out_dir/README.md``: a title, then one ``##`` section per entry (dicts as tables)."""
    lines = [f"# {title}", ""]
    for heading, body in sections.items():
        lines += [f"## {heading}", ""]
        if isinstance(body, dict):
            lines += ["| key | value |", "| --- | --- |"]
            lines += [f"| {key} | {_cell(value)} |" for key, value in body.items()]
        else:
            lines.append(body.strip())
        lines.append("")
    path = Path(out_dir) / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return "`" + json.dumps(value) + "`"
    return str(value)


def folder_size_mb(folder: Path) -> float:
    """Total size of the files under ``folder`` in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6
