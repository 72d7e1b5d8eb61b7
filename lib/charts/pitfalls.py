"""The pitfalls lab's chart: named series over steps, the mistaken runs in lib.pitfalls' colours."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ..lessons.pitfalls import SERIES_STYLE
from .runs import downsample


def _style(name: str) -> tuple[str | None, tuple[int, ...], float]:
    """(colour, dash, width) of a series: SERIES_STYLE's, else by its first word, else Altair's."""
    if name in SERIES_STYLE:
        return SERIES_STYLE[name]
    for prefix in ("mistake", "correct"):
        if name.startswith(prefix):
            return SERIES_STYLE["mistake, manual" if prefix == "mistake" else "correct"]
    return None, (1, 0), 2.0


def series_chart(
    series: dict[str, np.ndarray],
    title: str,
    y_title: str,
    log: bool = True,
    rules: dict[str, float] | None = None,
    x_title: str = "step",
    x: np.ndarray | None = None,
    max_points: int = 2_000,
) -> alt.LayerChart:
    """Lines of named series over steps (or over x), downsampled, non-finite values dropped.

    On a log scale values <= 0 are dropped too. Names in SERIES_STYLE get its colours and dashes;
    rules draws a labelled vertical line per entry.
    """
    frame, dropped = _series_frame(series, x, max_points, log)
    layers = [_series_lines(frame, list(series), y_title, x_title, log)]
    if rules:
        layers += _rule_layers(rules)
    subtitle = [f"{dropped:,} non-finite values not drawn (the run blew up)"] if dropped else []
    title_params = alt.TitleParams(title, subtitle=subtitle, anchor="start")
    return alt.layer(*layers).properties(title=title_params, height=340)


def _series_frame(
    series: dict[str, np.ndarray], x: np.ndarray | None, max_points: int, log: bool
) -> tuple[pd.DataFrame, int]:
    """(the long table of x, value, series to draw; how many non-finite values were left out)."""
    frames, dropped = [], 0
    for name, values in series.items():
        values = np.asarray(values, dtype=np.float64)
        [(idx, vals)] = downsample(values, max_points, positive=log)
        dropped += len(values) - int(np.isfinite(values).sum())
        steps = idx if x is None else np.asarray(x)[idx]
        frames.append(pd.DataFrame({"x": steps, "value": vals, "series": name}))
    return pd.concat(frames, ignore_index=True), dropped


def _series_lines(
    frame: pd.DataFrame, names: list[str], y_title: str, x_title: str, log: bool
) -> alt.Chart:
    """One line per series, in _style's colour, dash and width."""
    style = [_style(name) for name in names]
    legend = alt.Legend(orient="top", labelLimit=320)
    colors = [s[0] for s in style]
    scale = alt.Scale(domain=names, range=colors) if all(colors) else alt.Scale(domain=names)
    dashes = alt.Scale(domain=names, range=[list(s[1]) for s in style])
    widths = alt.Scale(domain=names, range=[s[2] for s in style])
    y_scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    return (
        alt.Chart(frame)
        .mark_line(clip=True)
        .encode(
            x=alt.X("x:Q", title=x_title),
            y=alt.Y(
                "value:Q",
                title=y_title,
                scale=y_scale,
                axis=alt.Axis(format="~g") if log else alt.Axis(),
            ),
            color=alt.Color("series:N", title=None, scale=scale, legend=legend),
            strokeDash=alt.StrokeDash("series:N", scale=dashes, legend=None),
            strokeWidth=alt.StrokeWidth("series:N", scale=widths, legend=None),
            tooltip=[
                "series:N",
                alt.Tooltip("x:Q", title=x_title, format=",.4g"),
                alt.Tooltip("value:Q", format=".4g"),
            ],
        )
    )


def _rule_layers(rules: dict[str, float]) -> list[alt.Chart]:
    """A dashed vertical rule per entry, and its label."""
    # Labels on staggered rows (pixels from the top), so nearby rules do not print over each other.
    rows = 2 + 13 * np.arange(len(rules))
    marks = pd.DataFrame({"x": list(rules.values()), "label": list(rules), "row": rows})
    base = alt.Chart(marks).encode(x="x:Q")
    text = base.mark_text(align="left", dx=4, baseline="top")
    return [
        base.mark_rule(color="black", strokeDash=[2, 2]),
        text.encode(text="label:N", y=alt.Y("row:Q", scale=None)),
    ]
