"""The console's plots as inline SVG drawn here, on the server: nothing from a CDN, no
script needed to see them. Each is an image with a title and a description a screen reader
reads (its figures in words), and a tooltip per bar. Every text is escaped."""

from __future__ import annotations

from datetime import UTC

from markupsafe import Markup, escape

from dsp_integration.client.activity import MinuteCount, TypeReviewTimes

WIDTH = 640
HEIGHT = 180
LEFT = 44
RIGHT = 12
TOP = 12
BOTTOM = 28


def _nice_ceiling(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least `value`."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _svg(chart_id: str, title: str, description: str, body: list[str], height: int) -> Markup:
    return Markup(
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="{escape(chart_id)}-title '
        f'{escape(chart_id)}-desc" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def requests_chart(minutes: list[MinuteCount]) -> Markup:
    """A bar per minute of the last hour: the requests sent, the part answered 429 on top."""
    total = sum(m.requests for m in minutes)
    throttled = sum(m.throttled for m in minutes)
    busiest = max(minutes, key=lambda m: m.requests, default=None)
    top = _nice_ceiling(max((m.requests for m in minutes), default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(minutes), 1)
    body = [
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{top:g}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + plot_h + 4}" text-anchor="end">0</text>',
    ]
    for index, minute in enumerate(minutes):
        x = LEFT + index * step
        at = minute.minute.astimezone(UTC).strftime("%H:%M")
        tip = f"{at} UTC: {minute.requests} requests" + (
            f", {minute.throttled} answered 429" if minute.throttled else ""
        )
        bar_h = plot_h * minute.requests / top
        red_h = plot_h * minute.throttled / top
        body.append(
            f'<g class="minute"><title>{escape(tip)}</title>'
            f'<rect class="hit" x="{x:.1f}" y="{TOP}" width="{step:.1f}" height="{plot_h}"/>'
            f'<rect class="bar" x="{x + 0.5:.1f}" y="{TOP + plot_h - bar_h:.1f}" '
            f'width="{max(step - 1, 1):.1f}" height="{bar_h:.1f}"/>'
            + (
                f'<rect class="bar-429" x="{x + 0.5:.1f}" y="{TOP + plot_h - bar_h:.1f}" '
                f'width="{max(step - 1, 1):.1f}" height="{red_h:.1f}"/>'
                if minute.throttled
                else ""
            )
            + "</g>"
        )
    if minutes:
        first = minutes[0].minute.astimezone(UTC).strftime("%H:%M")
        last = minutes[-1].minute.astimezone(UTC).strftime("%H:%M")
        body.append(
            f'<text class="tick" x="{LEFT}" y="{HEIGHT - 8}">{escape(first)} UTC</text>'
            f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
            f"{escape(last)} UTC</text>"
        )
    description = f"{total} DSP requests in the last {len(minutes)} minutes"
    if busiest is not None and busiest.requests:
        at = busiest.minute.astimezone(UTC).strftime("%H:%M")
        description += f"; the busiest minute, {at} UTC, had {busiest.requests}"
    description += f"; {throttled} answered 429."
    return _svg("requests-chart", "DSP requests per minute, last hour", description, body, HEIGHT)


def _seconds(value: float | None) -> str:
    return "not known yet" if value is None else f"{value:.1f} s"


def _short(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} s"


def review_chart(types: list[TypeReviewTimes]) -> Markup:
    """A row per entity type: a bar to the median review time, a lighter one to the 90th
    percentile, with the figures written beside it."""
    row_h = 30
    height = TOP + row_h * len(types) + 8
    label_w = 90
    text_w = 250
    plot_w = WIDTH - label_w - text_w - RIGHT
    top = _nice_ceiling(max((t.p90 or t.median or 0 for t in types), default=0))
    body = []
    sentences = []
    for index, kind in enumerate(types):
        y = TOP + index * row_h
        figures = (
            f"median {_seconds(kind.median)}, 90% by {_seconds(kind.p90)} "
            f"({kind.decided} decided of {kind.rounds} rounds)"
        )
        shown = (
            f"median {_short(kind.median)} · p90 {_short(kind.p90)} · "
            f"{kind.decided}/{kind.rounds} decided"
        )
        sentences.append(f"{kind.entity_type}: {figures}")
        p90_w = plot_w * (kind.p90 or 0) / top
        median_w = plot_w * (kind.median or 0) / top
        body.append(
            f'<g class="type-row"><title>{escape(kind.entity_type)}: {escape(figures)}</title>'
            f'<text class="label" x="0" y="{y + 16}">{escape(kind.entity_type)}</text>'
            f'<rect class="track" x="{label_w}" y="{y + 4}" width="{plot_w}" height="16"/>'
            f'<rect class="bar-p90" x="{label_w}" y="{y + 4}" width="{p90_w:.1f}" height="16"/>'
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{median_w:.1f}" height="16"/>'
            f'<text class="tick" x="{label_w + plot_w + 8}" y="{y + 16}">'
            f"{escape(shown)}</text></g>"
        )
    body.append(
        f'<text class="tick" x="{label_w + plot_w}" y="{height - 1}" text-anchor="end">'
        f"{top:g} s</text>"
    )
    return _svg(
        "review-chart",
        "DSP review time per entity type (median, and 90th percentile lighter)",
        "; ".join(sentences) + ".",
        body,
        height + 6,
    )
