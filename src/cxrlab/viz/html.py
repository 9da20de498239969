"""The pieces of a self-contained HTML page: figures as inline base64 images, escaped tables, one stylesheet.

Nothing on the page points outside it (no fonts, scripts, stylesheets or images from elsewhere), so it opens
the same offline, from an e-mail or from a shared drive.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence

from matplotlib.figure import Figure

__all__ = ["figure_uri", "img", "page", "section", "table"]

CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d1d1f;
       margin: 0 auto; max-width: 1200px; padding: 0 20px 40px; line-height: 1.45; }
header { border-bottom: 2px solid #ddd; margin-bottom: 12px; }
h1 { font-size: 1.6em; margin: 18px 0 4px; } h2 { margin-top: 34px; border-bottom: 1px solid #e5e5e5; }
h3 { margin: 20px 0 6px; }
nav a { margin-right: 14px; white-space: nowrap; } nav { margin: 8px 0 12px; line-height: 1.9; }
p.note { color: #555; font-size: 0.92em; margin: 4px 0; overflow-wrap: anywhere; }
img.plot { display: block; max-width: 100%; height: auto; margin: 10px 0; }
.scroll { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.86em; margin: 8px 0; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f6; } td:first-child, th:first-child { text-align: left; }
td.wrap { white-space: normal; overflow-wrap: anywhere; text-align: left; max-width: 420px; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 6px; border-radius: 2px;
          vertical-align: baseline; }
.thumbs { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px; }
figure.thumb { margin: 0; min-width: 0; }
figure.thumb img { width: 100%; height: auto; display: block; border: 1px solid #ddd; }
figure.thumb figcaption { font-size: 0.8em; color: #444; overflow-wrap: anywhere; }
"""


def figure_uri(fig: Figure, *, dpi: int = 90, jpeg: bool = False) -> str:
    """The figure as a ``data:`` URI: PNG for plots (sharp lines), JPEG for radiographs (10x smaller)."""
    buf = io.BytesIO()
    if jpeg:
        fig.savefig(buf, format="jpg", dpi=dpi, pil_kwargs={"quality": 82, "optimize": True})
        mime = "image/jpeg"
    else:
        fig.savefig(buf, format="png", dpi=dpi)
        mime = "image/png"
    fig.clear()
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def img(uri: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" src="{uri}" alt="{html.escape(alt)}">'


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    swatches: dict[str, str] | None = None,
    wrap: Sequence[int] = (),
) -> str:
    """An escaped HTML table in a horizontal scroller; ``swatches`` puts a label's colour before its name
    in the first column; ``wrap``: indices of columns whose text may wrap."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for k, value in enumerate(row):
            text = html.escape(_fmt(value))
            if k == 0 and swatches and str(value) in swatches:
                text = f'<span class="swatch" style="background:{swatches[str(value)]}"></span>{text}'
            cls = ' class="wrap"' if k in wrap else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    rows_html = "".join(body)
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table></div>'
    )


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def section(anchor: str, title: str, body: Sequence[str]) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{"".join(body)}</section>'


def page(title: str, intro: Sequence[str], sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document; ``sections``: (anchor, title, html) in order, linked from the top."""
    nav = " ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in sections)
    body = "".join(s for _, _, s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1>{''.join(intro)}<nav>{nav}</nav></header>{body}</body></html>\n"
    )
