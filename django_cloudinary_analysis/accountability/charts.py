"""Server-rendered SVG charts: no script, no build step, no network.

Colours come from CSS custom properties set by the dashboard's stylesheet,
so the charts follow the admin's light and dark themes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

#: Series colours (CSS variables with fallbacks), cycled.
PALETTE = [f"var(--dca-series-{n})" for n in range(1, 7)]

WIDTH = 720
HEIGHT = 220
PAD_LEFT = 44
PAD_BOTTOM = 28
PAD_TOP = 10


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def stacked_bars(
    title: str,
    days: Sequence[date],
    series: dict[str, list[int]],
    labels: dict[str, str] | None = None,
) -> SafeString:
    """A stacked bar per day, one colour per series, with a legend."""
    labels = labels or {}
    names = list(series)
    totals = [sum(series[n][i] for n in names) for i in range(len(days))]
    top = _nice_max(max(totals, default=0))
    plot_w = WIDTH - PAD_LEFT - 8
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.7, 1)
    parts = [
        f'<svg class="dca-chart" viewBox="0 0 {WIDTH} {HEIGHT + 24}" role="img" '
        f'aria-label="{escape(title)}" data-series="{len(names)}">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in (0, 0.5, 1):
        y = PAD_TOP + plot_h * (1 - tick)
        parts.append(
            f'<line class="dca-grid" x1="{PAD_LEFT}" x2="{WIDTH - 8}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="dca-axis" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{_fmt(top * tick)}</text>'
        )
    for i, day in enumerate(days):
        x = PAD_LEFT + i * slot + (slot - bar) / 2
        base = float(PAD_TOP + plot_h)
        for k, name in enumerate(names):
            value = series[name][i]
            if not value:
                continue
            h = plot_h * value / top
            base -= h
            parts.append(
                f'<rect class="dca-bar" x="{x:.1f}" y="{base:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[k % len(PALETTE)]}">'
                f"<title>{escape(day.isoformat())} · "
                f"{escape(labels.get(name, name))}: {value}</title></rect>"
            )
    step = max(1, len(days) // 8)
    for i in range(0, len(days), step):
        x = PAD_LEFT + i * slot + slot / 2
        parts.append(
            f'<text class="dca-axis" x="{x:.1f}" y="{HEIGHT - 10}" '
            f'text-anchor="middle">{days[i].strftime("%m-%d")}</text>'
        )
    parts.append(_legend(names, labels, HEIGHT + 14))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every value is escaped)


def hbars(
    title: str,
    rows: Sequence[tuple[str, float, str]],
    *,
    maximum: float | None = None,
) -> SafeString:
    """Horizontal bars: (label, value, text shown beside the bar)."""
    row_h = 22
    height = max(len(rows), 1) * row_h + 8
    label_w = 250
    plot_w = WIDTH - label_w - 160
    top = maximum
    if top is None:
        top = _nice_max(max((r[1] for r in rows), default=0))
    parts = [
        f'<svg class="dca-chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" data-series="{len(rows)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value, text) in enumerate(rows):
        y = 4 + i * row_h
        w = plot_w * (value / top) if top else 0
        parts.append(
            f'<text class="dca-label" x="{label_w - 8}" y="{y + 15}" '
            f'text-anchor="end">{escape(_clip(label))}</text>'
            f'<rect class="dca-track" x="{label_w}" y="{y + 3}" width="{plot_w}" '
            f'height="{row_h - 8}"/>'
            f'<rect class="dca-bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" '
            f'height="{row_h - 8}" fill="{PALETTE[0]}"><title>{escape(label)}: '
            f"{escape(text)}</title></rect>"
            f'<text class="dca-value" x="{label_w + plot_w + 8}" y="{y + 15}">'
            f"{escape(text)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every value is escaped)


def _legend(names: Sequence[str], labels: dict[str, str], y: float) -> str:
    parts = []
    x = float(PAD_LEFT)
    for k, name in enumerate(names):
        text = labels.get(name, name)
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" '
            f'fill="{PALETTE[k % len(PALETTE)]}"/>'
            f'<text class="dca-axis" x="{x + 14:.1f}" y="{y}">{escape(text)}</text>'
        )
        x += 24 + 7 * len(text)
    return "".join(parts)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _clip(text: str, width: int = 38) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
