"""A self-contained HTML page for a report: tables and PNG figures embedded inline, so
``report.html`` opens in any browser with no server and no other files."""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone

import pandas as pd

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.ok { color: #1a7f37; } .bad { color: #cf222e; font-weight: bold; } .skip { color: #9a6700; }
img { max-width: 100%; border: 1px solid #eee; }
.meta { color: #666; font-size: 0.85em; }
"""

#: Longest table shown in full; longer ones show their head and say how to get the rest.
MAX_ROWS = 60


def table_html(frame: pd.DataFrame, name: str) -> str:
    """A DataFrame as an HTML table (the first ``MAX_ROWS`` rows)."""
    shown = frame.head(MAX_ROWS)
    note = "" if len(frame) <= MAX_ROWS else (
        f"<p class='meta'>First {MAX_ROWS} of {len(frame)} rows; all rows in {name}.csv.</p>")
    return shown.to_html(index=False, float_format=lambda v: f"{v:.6g}", border=0,
                         classes="table") + note


def image_html(png: bytes, caption: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return (f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{encoded}'>"
            f"<figcaption class='meta'>{html.escape(caption)}</figcaption></figure>")


def render_page(title: str, summary_lines: list[str], sections: list[tuple[str, str]]) -> str:
    """The whole page. ``sections`` are (heading, html body) pairs."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines)
    body = "".join(f"<h2>{html.escape(heading)}</h2>{content}" for heading, content in sections)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='meta'>sbml_cme report, {stamp}</p><ul>{summary}</ul>{body}"
            "</body></html>")
