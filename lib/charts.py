"""Altair charts of a Result: both loops overlaid, downsampled, finite values only."""

from __future__ import annotations

from types import MappingProxyType

import altair as alt
import numpy as np
import pandas as pd

from .run import Result

# A line needs no more than about two points per horizontal pixel: the first, last, lowest and highest
# value of each bucket two pixels wide draw the same picture as every point would.
POINTS_PER_PIXEL = 2
CHART_WIDTH = 600  # px: a half-width chart on a 1,400 to 1,900 px wide screen is 450 to 750 px wide
MAX_POINTS = POINTS_PER_PIXEL * CHART_WIDTH  # per series, whatever the iteration count
LIVE_POINTS = 400  # per series while a run is still going: a quarter of that, redrawn every second or so
LIVE_ROWS = 8_000  # and at most this many points in all of a live redraw's lines (an MLP has 37 of them)
MAX_WEIGHT_SERIES = 12  # weights drawn per loop; more lines than this is a blur
HEIGHT = 200  # of the plotting area; titles, legend and axes come on top (autosize fit-x below)
# Fit the width to the container, keep the height for the data: with plain "fit", a title, a
# legend and two axes squeeze a short chart's plotting area to a sliver.
AUTOSIZE = MappingProxyType({"type": "fit-x", "contains": "padding"})  # plot area keeps its height
LABEL_SPACING = 14  # px between the names at the ends of the weight lines (11 px text)

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
# Where a line is thinned, its points zigzag a pixel apart and a full-width torch line would cover the
# manual one: torch is drawn a third as wide there, at 60 % opacity.
DENSE_TORCH = MappingProxyType({"strokeWidth": 0.5, "opacity": 0.6})
LOSS_NAMES = MappingProxyType(
    {"mse": "MSE", "half_mse": "½·MSE", "sse": "sum of squared errors", "bce": "binary cross-entropy"}
)


def downsample(values: np.ndarray, max_points: int = MAX_POINTS, *, positive: bool = False):
    """(steps, values) of at most max_points finite points per column: each bucket's first, last, min and max.

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
        return _extremes(columns, max_points), 0
    keep = np.isfinite(columns) & (columns > 0) if positive else np.isfinite(columns)
    if keep.all():  # the sum overflowed, every value is finite
        return _extremes(columns, max_points), 0
    # Rare (a diverged run, a log scale): thin each column's surviving points separately.
    out = []
    for j in range(columns.shape[1]):
        steps = np.flatnonzero(keep[:, j])
        [(idx, vals)] = _extremes(columns[steps, j : j + 1], max_points)
        out.append((steps[idx], vals))
    return out, int(keep.size - keep.sum())


def _extremes(columns: np.ndarray, max_points: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per column, the first, last, min and max of each of max_points // 4 equal buckets, in step order."""
    n, k = columns.shape
    if n <= max_points:
        steps = np.arange(n)
        return [(steps, columns[:, j]) for j in range(k)]
    size = -(-n // max(1, max_points // 4))  # bucket length, rounded up so there are <= max_points // 4 buckets
    full = n // size
    parts = [_bucket_points(columns[: full * size].reshape(full, size, k), 0)]
    if full * size < n:  # the short last bucket
        parts.append(_bucket_points(columns[full * size :][None], full * size))
    idx = np.concatenate(parts)  # (4 * buckets, k), non-decreasing down each column
    out = []
    for j in range(k):
        # A bucket's extreme is often its first or last point: each step is sent once.
        steps = idx[:, j][np.concatenate([[True], np.diff(idx[:, j]) > 0])]
        out.append((steps, columns[steps, j]))
    return out


def _bucket_points(buckets: np.ndarray, offset: int) -> np.ndarray:
    """Row indices of each bucket's first, min, max and last row per column, in order: (4 * buckets, k)."""
    count, size, k = buckets.shape
    start = offset + size * np.arange(count)[:, None, None]
    first, last = np.zeros((count, 1, k), dtype=np.int64), np.full((count, 1, k), size - 1)
    points = np.concatenate([first, buckets.argmin(axis=1)[:, None], buckets.argmax(axis=1)[:, None], last], axis=1)
    return (np.sort(points, axis=1) + start).reshape(-1, k)


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
    # One notation per axis: a log axis spans decades (1e-5 to 1e+22), where "~g" would mix 0.00001,
    # 10000000000 and 1e+22; scientific notation for every label there.
    axis = alt.Axis(format="~e" if log else "~g")
    return alt.FacetedEncoding(
        x=_q(alt.X, "step", title=x_title),
        y=_q(alt.Y, "value", title=y_title, scale=scale, axis=axis),
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


def _frame(steps: np.ndarray, values: np.ndarray, **labels: str) -> pd.DataFrame:
    """The rows of one line, as few bytes as they can be: 4-byte steps, and each label a one-byte category.

    Streamlit sends a chart's data as Arrow; a label repeated as text on every row was most of its bytes.
    """
    frame = pd.DataFrame({"step": np.asarray(steps, dtype=np.int32), "value": np.asarray(values, dtype=np.float64)})
    for name, label in labels.items():
        frame[name] = pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), [label])
    return frame


def _lines(series: list[tuple[str, str, np.ndarray, np.ndarray]], encoding, dense: bool = False, **props):
    """One line layer per (loop, series name, steps, values): manual thick and solid, torch thin and dashed.

    Manual layers come first so torch is drawn on top; dense (thinned) lines draw torch finer still.
    A layer per series keeps every dataset within MAX_POINTS rows, well under Altair's default row
    limit, so the charts display in a notebook as they are. The encoding sits once on the parent:
    Altair deep-copies every layer's encoding when it builds a layer chart, and that copying was
    most of the build time.
    """
    order = sorted(series, key=lambda s: s[0] != "manual")
    layers = []
    for loop, name, steps, vals in order:
        mark = {"strokeWidth": STYLE[loop]["strokeWidth"], **(DENSE_TORCH if dense and loop == "torch" else {})}
        layers.append(
            alt.Chart(
                _frame(steps, vals, loop=LABELS[loop], series=name), mark=alt.MarkDef(type="line", clip=True, **mark)
            )
        )
    return alt.LayerChart(layer=layers, encoding=encoding, **props)


def _title(main: str, notes: list[str]) -> alt.TitleParams:
    return alt.TitleParams(main, subtitle=[n for n in notes if n], anchor="start")


def _notes(result: Result, max_points: int, dropped: int, log: bool) -> list[str]:
    """Subtitle lines saying what the chart leaves out, if anything."""
    notes = []
    if _dense(result, max_points):
        notes.append(f"{result.steps:,} steps drawn as at most {max_points:,} points per line, peaks and troughs kept.")
    if dropped:
        why = "not finite or <= 0, which a log scale cannot draw" if log else "not finite"
        notes.append(f"{dropped:,} value(s) left out: {why}.")
    return notes


def _dense(result: Result, max_points: int) -> bool:
    """Whether the lines are thinned: more steps than points drawn."""
    return result.steps + 1 > max_points


def _per_step_chart(result: Result, metric: str, title: str, y_title: str, log: bool, max_points: int):
    """One value per step for both loops (loss or grad_norm), overlaid."""
    series, dropped = [], 0
    for loop in ("manual", "torch"):
        [(steps, vals)], lost = _thin(getattr(getattr(result, loop), metric), max_points, positive=log)
        series.append((loop, y_title, steps, vals))
        dropped = max(dropped, lost)
    heading = _title(f"{title}{' (log scale)' if log else ''}", _notes(result, max_points, dropped, log))
    return _lines(
        series,
        _loop_encoding(y_title, log),
        _dense(result, max_points),
        title=heading,
        height=HEIGHT,
        autosize=alt.AutoSizeParams(**AUTOSIZE),
    )


def loss_chart(result: Result, log: bool = True, max_points: int = MAX_POINTS) -> alt.LayerChart:
    """Loss of each step's batch, before its update, for both loops."""
    name = LOSS_NAMES[result.config.loss]
    return _per_step_chart(result, "loss", f"Loss per step: {name}", "loss", log, max_points)


def grad_norm_chart(result: Result, log: bool = True, max_points: int = MAX_POINTS) -> alt.LayerChart:
    """L2 norm of each step's gradient for both loops."""
    return _per_step_chart(result, "grad_norm", "Gradient norm per step", "‖gradient‖", log, max_points)


def _end_labels(series: list, x_title: str, y_title: str, height: int, also=None) -> list[alt.Chart]:
    """A text layer naming each series at the end of its manual line, so one colour per loop stays readable.

    Ends closer than LABEL_SPACING pixels (on a plot `height` px tall spanning every drawn value, and
    `also`) are moved apart, so that lines ending together (an MLP's weights) keep legible names.
    """
    ends = [(name, steps[-1], vals[-1]) for loop, name, steps, vals in series if loop == "manual" and len(steps)]
    if not ends:
        return []
    drawn = [vals for _, _, _, vals in series if len(vals)] + (
        [np.asarray(also, dtype=np.float64)] if also is not None else []
    )
    everything = np.concatenate(drawn)
    everything = everything[np.isfinite(everything)]
    low, high = float(everything.min()), float(everything.max())
    frame = pd.DataFrame(ends, columns=["series", "step", "value"])
    frame["at"] = spread(frame["value"].to_numpy(), (high - low) * LABEL_SPACING / height, low, high)
    text = alt.FacetedEncoding(
        x=_q(alt.X, "step", title=x_title),
        y=_q(alt.Y, "at", title=y_title),
        text=_n(alt.Text, "series"),
        tooltip=[_n(alt.Tooltip, "series"), _q(alt.Tooltip, "value", format=".6g", title="last value")],
    )
    mark = alt.MarkDef(type="text", align="left", baseline="middle", dx=5, fontSize=11, color="#333")
    return [alt.Chart(frame, mark=mark, encoding=text)]


def spread(values: np.ndarray, gap: float, low: float, high: float) -> np.ndarray:
    """Positions for labels at values, at least gap apart, as close to their values as that allows.

    Pushed up from the lowest, then back down from high if the top one went past it; when they
    cannot all fit between low and high at that gap, they are shared out evenly between the two.
    """
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    at = values[order].copy()
    if len(at) < 2 or gap <= 0:
        return values.copy()
    if gap * (len(at) - 1) > high - low:
        at = np.linspace(low, high, len(at))
    else:
        for i in range(1, len(at)):
            at[i] = max(at[i], at[i - 1] + gap)
        at[-1] = min(at[-1], high)
        for i in range(len(at) - 2, -1, -1):
            at[i] = min(at[i], at[i + 1] - gap)
    out = np.empty_like(at)
    out[order] = at
    return out


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
    layers = [_lines(series, _loop_encoding("weight value", False, x_title), _dense(result, max_points))]
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)[:shown]
    layers += _end_labels(series, x_title, "weight value", HEIGHT + 40, ref)
    if ref is not None:
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
    layers = [_lines(series, _loop_encoding("‖tensor‖", False, x_title), _dense(result, max_points))]
    layers += _end_labels(series, x_title, "‖tensor‖", HEIGHT)
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
        _frame(steps, vals),
        mark=alt.MarkDef(type="line", color="#2ca02c", strokeWidth=1.5, clip=True),
        encoding=encoding,
        title=_title("|manual − torch| per step, largest over the weights", notes),
        height=HEIGHT,
        autosize=alt.AutoSizeParams(**AUTOSIZE),
    )


def live_points(result: Result, param_norms: bool = False) -> int:
    """Points per line for a live redraw: LIVE_POINTS, fewer where the charts have many lines (LIVE_ROWS in all).

    param_norms: whether param_norms_chart is drawn too.
    """
    lines = 2 + 2 + 1 + 2 * min(len(result.weight_names), MAX_WEIGHT_SERIES)  # loss, gradient norm, diff, weights
    lines += 2 * len(result.tensor_names) if param_norms else 0
    return min(LIVE_POINTS, LIVE_ROWS // lines)


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
