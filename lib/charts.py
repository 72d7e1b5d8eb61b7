"""Altair charts of a Result: both loops overlaid, downsampled, finite values only."""

from __future__ import annotations

from types import MappingProxyType

import altair as alt
import numpy as np
import pandas as pd

from .run import Result

MAX_POINTS = 5_000  # per series, whatever the iteration count
MAX_WEIGHT_SERIES = 12  # weights drawn per loop; more lines than this is a blur
HEIGHT = 200  # of the plotting area; titles, legend and axes come on top (autosize fit-x below)
# Fit the width to the container, keep the height for the data: with plain "fit", a title, a
# legend and two axes squeeze a short chart's plotting area to a sliver.
AUTOSIZE = MappingProxyType({"type": "fit-x", "contains": "padding"})  # plot area keeps its height

LABELS = MappingProxyType({"manual": "manual (numpy)", "torch": "torch"})
COLORS = MappingProxyType({"manual": "#1f77b4", "torch": "#ff7f0e"})
# Manual is drawn thick and solid underneath, torch thin and dashed on top, so both stay
# visible exactly where they coincide (which, when the loops agree, is everywhere).
STYLE = MappingProxyType(
    {
        "manual": MappingProxyType({"strokeWidth": 3.5}),
        "torch": MappingProxyType({"strokeWidth": 1.5, "strokeDash": (5, 3)}),
    }
)


def downsample(values: np.ndarray, max_points: int = MAX_POINTS, *, positive: bool = False):
    """(steps, values) of at most max_points finite points per column, keeping each bucket's min and max.

    values is (N,) or (N, k); step is the row index. Non-finite values (and, with positive=True,
    values <= 0, which a log scale cannot draw) are dropped first. Returns a list of (steps, values)
    pairs, one per column.
    """
    return _thin(values, max_points, positive)[0]


def _thin(values: np.ndarray, max_points: int, positive: bool = False):
    """downsample, plus how many values were dropped for being non-finite (or <= 0 with positive)."""
    values = np.asarray(values, dtype=np.float64)
    columns = values.reshape(len(values), -1)
    # A sum is the quickest finiteness test of a big array; the exact test only runs if it fails.
    if np.isfinite(columns.sum()) and not (positive and columns.min(initial=np.inf) <= 0):
        return _minmax(columns, max_points), 0
    keep = np.isfinite(columns) & (columns > 0) if positive else np.isfinite(columns)
    if keep.all():  # the sum overflowed, every value is finite
        return _minmax(columns, max_points), 0
    # Rare (a diverged run, a log scale): thin each column's surviving points separately.
    out = []
    for j in range(columns.shape[1]):
        steps = np.flatnonzero(keep[:, j])
        [(idx, vals)] = _minmax(columns[steps, j : j + 1], max_points)
        out.append((steps[idx], vals))
    return out, int(keep.size - keep.sum())


def _minmax(columns: np.ndarray, max_points: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per column, the min and max of each of max_points // 2 equal buckets, in step order."""
    n, k = columns.shape
    if n <= max_points:
        steps = np.arange(n)
        return [(steps, columns[:, j]) for j in range(k)]
    size = -(-n // (max_points // 2))  # bucket length, rounded up so there are <= max_points // 2 buckets
    full = n // size
    parts = [_bucket_extremes(columns[: full * size].reshape(full, size, k), 0, size)]
    if full * size < n:  # the short last bucket
        parts.append(_bucket_extremes(columns[full * size :][None], full * size, size))
    idx = np.concatenate(parts)  # (points, k), increasing down each column
    return [(idx[:, j], columns[idx[:, j], j]) for j in range(k)]


def _bucket_extremes(buckets: np.ndarray, offset: int, size: int) -> np.ndarray:
    """Row indices of each bucket's min and max per column, the earlier one first: (2 * buckets, k)."""
    lo, hi = buckets.argmin(axis=1), buckets.argmax(axis=1)
    start = offset + size * np.arange(len(buckets))[:, None]
    first, second = np.minimum(lo, hi) + start, np.maximum(lo, hi) + start
    return np.stack([first, second], axis=1).reshape(-1, buckets.shape[2])


def _q(channel, name: str, **kw):
    """A quantitative channel by field name; Altair validates shorthand like "step:Q" at build time, slowly."""
    return channel(field=name, type="quantitative", **kw)


def _n(channel, name: str, **kw):
    """A nominal channel by field name."""
    return channel(field=name, type="nominal", **kw)


def _loop_encoding(y_title: str, log: bool, x_title: str = "step") -> alt.FacetedEncoding:
    """x = step, y = value, one colour and one dash pattern per loop (one legend), and a tooltip."""
    domain = [LABELS["manual"], LABELS["torch"]]
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    return alt.FacetedEncoding(
        x=_q(alt.X, "step", title=x_title),
        y=_q(alt.Y, "value", title=y_title, scale=scale, axis=alt.Axis(format="~g")),
        color=_n(
            alt.Color,
            "loop",
            scale=alt.Scale(domain=domain, range=[COLORS["manual"], COLORS["torch"]]),
            legend=alt.Legend(orient="top", title=None, symbolStrokeWidth=3, symbolSize=300, labelFontSize=12),
        ),
        strokeDash=_n(
            alt.StrokeDash,
            "loop",
            legend=alt.Legend(orient="top", title=None),
            scale=alt.Scale(domain=domain, range=[[1, 0], list(STYLE["torch"]["strokeDash"])]),
        ),
        tooltip=[
            _n(alt.Tooltip, "loop"),
            _n(alt.Tooltip, "series"),
            _q(alt.Tooltip, "step", format=","),
            _q(alt.Tooltip, "value", format=".6g"),
        ],
    )


def _lines(series: list[tuple[str, str, np.ndarray, np.ndarray]], encoding, **props) -> alt.LayerChart:
    """One line layer per (loop, series name, steps, values): manual thick and solid, torch thin and dashed.

    Manual layers come first so torch is drawn on top. A layer per series keeps every dataset
    within MAX_POINTS rows, which is also Altair's default row limit, so the charts display in a
    notebook as they are. The encoding sits once on the parent: Altair deep-copies every layer's
    encoding when it builds a layer chart, and that copying was most of the build time.
    """
    order = sorted(series, key=lambda s: s[0] != "manual")
    layers = [
        alt.Chart(
            pd.DataFrame({"step": steps, "value": vals, "loop": LABELS[loop], "series": name}),
            mark=alt.MarkDef(type="line", strokeWidth=STYLE[loop]["strokeWidth"], clip=True),
        )
        for loop, name, steps, vals in order
    ]
    return alt.LayerChart(layer=layers, encoding=encoding, **props)


def _title(main: str, notes: list[str]) -> alt.TitleParams:
    return alt.TitleParams(main, subtitle=[n for n in notes if n], anchor="start")


def _notes(result: Result, max_points: int, dropped: int, log: bool) -> list[str]:
    """Subtitle lines saying what the chart leaves out, if anything."""
    notes = []
    if result.steps + 1 > max_points:
        notes.append(f"{result.steps:,} steps drawn as at most {max_points:,} points per line (bucket min and max).")
    if dropped:
        why = "not finite or <= 0, which a log scale cannot draw" if log else "not finite"
        notes.append(f"{dropped:,} value(s) left out: {why}.")
    return notes


def _per_step_chart(result: Result, metric: str, title: str, y_title: str, log: bool, max_points: int):
    """One value per step for both loops (loss or grad_norm), overlaid."""
    series, dropped = [], 0
    for loop in ("manual", "torch"):
        [(steps, vals)], lost = _thin(getattr(getattr(result, loop), metric), max_points, positive=log)
        series.append((loop, y_title, steps, vals))
        dropped = max(dropped, lost)
    heading = _title(f"{title}{' (log scale)' if log else ''}", _notes(result, max_points, dropped, log))
    return _lines(
        series, _loop_encoding(y_title, log), title=heading, height=HEIGHT, autosize=alt.AutoSizeParams(**AUTOSIZE)
    )


def loss_chart(result: Result, log: bool = True, max_points: int = MAX_POINTS) -> alt.LayerChart:
    """Loss of each step's batch, before its update, for both loops."""
    name = {"mse": "MSE", "half_mse": "½·MSE", "sse": "sum of squared errors"}.get(result.config.loss, "loss")
    return _per_step_chart(result, "loss", f"Loss per step: {name}", "loss", log, max_points)


def grad_norm_chart(result: Result, log: bool = True, max_points: int = MAX_POINTS) -> alt.LayerChart:
    """L2 norm of each step's gradient for both loops."""
    return _per_step_chart(result, "grad_norm", "Gradient norm per step", "‖gradient‖", log, max_points)


def _end_labels(series: list, x_title: str) -> list[alt.Chart]:
    """A text layer naming each series at the end of its manual line, so one colour per loop stays readable."""
    ends = [(name, steps[-1], vals[-1]) for loop, name, steps, vals in series if loop == "manual" and len(steps)]
    if not ends:
        return []
    text = alt.FacetedEncoding(x=_q(alt.X, "step", title=x_title), y=_q(alt.Y, "value"), text=_n(alt.Text, "series"))
    mark = alt.MarkDef(type="text", align="left", dx=5, fontSize=11, color="#333")
    return [alt.Chart(pd.DataFrame(ends, columns=["series", "step", "value"]), mark=mark, encoding=text)]


def weights_chart(
    result: Result,
    reference: np.ndarray | None = None,
    reference_label: str = "least-squares solution",
    max_points: int = MAX_POINTS,
    max_series: int = MAX_WEIGHT_SERIES,
) -> alt.LayerChart:
    """Every weight after each step (row 0 is the init) for both loops, optionally with dotted target rules."""
    total = len(result.weight_names)
    shown = min(total, max_series)
    names = list(result.weight_names[:shown])
    series, dropped = [], 0
    for loop in ("manual", "torch"):
        pairs, lost = _thin(getattr(result, loop).weights[:, :shown], max_points)
        series += [(loop, name, steps, vals) for name, (steps, vals) in zip(names, pairs, strict=True)]
        dropped = max(dropped, lost)
    notes = [f"Showing the first {shown} of {total} weights." if shown < total else ""]
    if reference is not None:
        notes.append(f"Dotted grey lines: the {reference_label}.")
    notes += _notes(result, max_points, dropped, False)
    x_title = "steps taken (0 = initial weights)"
    layers = [_lines(series, _loop_encoding("weight value", False, x_title))]
    layers += _end_labels(series, x_title)
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)[:shown]
        rules = pd.DataFrame({"series": names[: len(ref)], "value": ref})
        rules = rules[np.isfinite(rules["value"])]
        rule = alt.FacetedEncoding(
            y=_q(alt.Y, "value"),
            tooltip=[_n(alt.Tooltip, "series", title=reference_label), _q(alt.Tooltip, "value", format=".6g")],
        )
        mark = alt.MarkDef(type="rule", strokeDash=[2, 3], color="#888", strokeWidth=1.5)
        layers.insert(0, alt.Chart(rules, mark=mark, encoding=rule))
    heading = _title("Weights per step", notes)
    return alt.LayerChart(layer=layers, title=heading, height=HEIGHT + 40, autosize=alt.AutoSizeParams(**AUTOSIZE))


def param_norms_chart(result: Result, max_points: int = MAX_POINTS) -> alt.LayerChart:
    """The L2 norm of each parameter tensor (weight, bias; W1, b1, W2, b2) after each step, for both loops.

    Every tensor's norm is recorded even when only some of a big model's weights are, so this chart
    covers every parameter where the weights chart shows a few.
    """
    names = list(result.tensor_names)
    series, dropped = [], 0
    for loop in ("manual", "torch"):
        pairs, lost = _thin(getattr(result, loop).param_norms, max_points)
        series += [(loop, name, steps, vals) for name, (steps, vals) in zip(names, pairs, strict=True)]
        dropped = max(dropped, lost)
    x_title = "steps taken (0 = initial weights)"
    layers = [_lines(series, _loop_encoding("‖tensor‖", False, x_title))]
    layers += _end_labels(series, x_title)
    notes = ["Every parameter tensor, whole: its L2 norm after each step."]
    heading = _title("Parameter norms per step", notes + _notes(result, max_points, dropped, False))
    return alt.LayerChart(layer=layers, title=heading, height=HEIGHT, autosize=alt.AutoSizeParams(**AUTOSIZE))


def diff_chart(result: Result, max_points: int = MAX_POINTS) -> alt.Chart:
    """Largest |manual - torch| over the weights after each step: float64 rounding, if the loops agree."""
    [(steps, vals)], dropped = _thin(result.step_diff, max_points)
    notes = [f"Largest over the run: {result.max_abs_diff:.3g}. One float64 rounding is about 1e-16."]
    notes += _notes(result, max_points, dropped, False)
    encoding = alt.FacetedEncoding(
        x=_q(alt.X, "step", title="steps taken (0 = initial weights)"),
        y=_q(alt.Y, "value", title="max |manual − torch|", axis=alt.Axis(format=".1e")),
        tooltip=[_q(alt.Tooltip, "step", format=","), _q(alt.Tooltip, "value", format=".3e", title="difference")],
    )
    return alt.Chart(
        pd.DataFrame({"step": steps, "value": vals}),
        mark=alt.MarkDef(type="line", color="#2ca02c", strokeWidth=1.5, clip=True),
        encoding=encoding,
        title=_title("|manual − torch| per step, largest over the weights", notes),
        height=HEIGHT,
        autosize=alt.AutoSizeParams(**AUTOSIZE),
    )


def all_charts(
    result: Result,
    log_loss: bool = True,
    reference: np.ndarray | None = None,
    reference_label: str = "least-squares solution",
    max_points: int = MAX_POINTS,
) -> dict[str, alt.TopLevelMixin]:
    """The four charts of a Result by name: "loss", "weights", "grad_norm", "diff".

    log_loss puts the loss and the gradient norm on log scales.
    """
    return {
        "loss": loss_chart(result, log=log_loss, max_points=max_points),
        "weights": weights_chart(result, reference, reference_label, max_points=max_points),
        "grad_norm": grad_norm_chart(result, log=log_loss, max_points=max_points),
        "diff": diff_chart(result, max_points=max_points),
    }
