"""Altair charts of a Result: both loops overlaid, downsampled, finite values only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import altair as alt
import numpy as np
import pandas as pd

from ..engine.data import Dataset
from ..engine.lockstep import Result
from ..lessons import classify
from ..twins.schedules import TORCH_NAMES as TORCH_SCHEDULES

# A line needs no more than about two points per horizontal pixel: the first, last, lowest and
# highest value of each bucket two pixels wide draw the same picture as every point would.
POINTS_PER_PIXEL = 2
CHART_WIDTH = 600  # px: a half-width chart on a 1,400 to 1,900 px wide screen is 450 to 750 px wide
MAX_POINTS = POINTS_PER_PIXEL * CHART_WIDTH  # per series, whatever the iteration count
# While a run is still going: LIVE_POINTS per series (a quarter of MAX_POINTS, redrawn every second
# or so), and at most LIVE_ROWS points in all of a live redraw's lines (an MLP has 37 of them).
LIVE_POINTS = 400
LIVE_ROWS = 8_000
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
# Where a line is thinned, its points zigzag a pixel apart and a full-width torch line would cover
# the manual one: torch is drawn a third as wide there, at 60 % opacity.
DENSE_TORCH = MappingProxyType({"strokeWidth": 0.5, "opacity": 0.6})
# The per-epoch mean of the batch losses, drawn over them in a darker shade of each loop's colour.
EPOCH_LABELS = MappingProxyType({"manual": "manual: epoch mean", "torch": "torch: epoch mean"})
EPOCH_COLORS = MappingProxyType({"manual": "#08306b", "torch": "#a63603"})
# Their stroke widths; torch dashed, as its batch line.
EPOCH_STYLE = MappingProxyType({"manual": 2.5, "torch": 1.2})
# With a validation split the loss chart tells train from validation by the dash, the loops by
# colour (and width: manual thick underneath, torch thin on top).
TRAIN_SERIES, VAL_SERIES = "training batch", "validation"
EPOCH_SERIES = "epoch mean"  # the dash legend's name of the epoch-mean lines
VAL_DASH = (6, 3)
FADED = 0.45  # opacity of the batch-loss lines under the epoch means, so the means stand out
# Accuracy is measured at ACCURACY_POINTS steps at most (a line of 400 points on a ~600 px chart),
# and with at most ACCURACY_WORK (sample x weight) products in all, so a big data set stays quick.
ACCURACY_POINTS = 400
ACCURACY_WORK = 20_000_000
BOUNDARY_GRID = 60  # cells per side of the decision-boundary picture: 3,600 cells, about 10 px each
BOUNDARY_SAMPLES = 1_000  # data points drawn on it, at most (evenly spread through the data)
CLASS_COLORS = ("#762a83", "#1b7837")  # class 0 and class 1: the two ends of the shading's scheme
LOSS_NAMES = MappingProxyType(
    {
        "mse": "MSE",
        "half_mse": "½·MSE",
        "sse": "sum of squared errors",
        "bce": "binary cross-entropy",
    }
)


def downsample(values: np.ndarray, max_points: int = MAX_POINTS, *, positive: bool = False):
    """(steps, values) of at most max_points finite points per column: each bucket's extremes.

    The extremes are each bucket's first, last, min and max.

    values is (N,) or (N, k); step is the row index. Non-finite values (and, with positive=True,
    values <= 0, which a log scale cannot draw) are dropped first. Returns a list of (steps, values)
    pairs, one per column.
    """
    return _thin(values, max_points, positive)[0]


def _thin(values: np.ndarray, max_points: int, positive: bool = False):
    """downsample, plus how many values were dropped as non-finite (or <= 0 with positive)."""
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
    """Per column, each of max_points // 4 equal buckets' first, last, min and max, in order."""
    n, k = columns.shape
    if n <= max_points:
        steps = np.arange(n)
        return [(steps, columns[:, j]) for j in range(k)]
    # The bucket length, rounded up so there are <= max_points // 4 buckets.
    size = -(-n // max(1, max_points // 4))
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
    """Row indices of each bucket's first, min, max and last row per column: (4 * buckets, k)."""
    count, size, k = buckets.shape
    start = offset + size * np.arange(count)[:, None, None]
    first, last = np.zeros((count, 1, k), dtype=np.int64), np.full((count, 1, k), size - 1)
    points = np.concatenate(
        [first, buckets.argmin(axis=1)[:, None], buckets.argmax(axis=1)[:, None], last], axis=1
    )
    return (np.sort(points, axis=1) + start).reshape(-1, k)


def _q(channel, name: str, **kw):
    """A quantitative channel by field name; Altair validates shorthand ("step:Q") slowly."""
    return channel(field=name, type="quantitative", **kw)


def _n(channel, name: str, **kw):
    """A nominal channel by field name."""
    return channel(field=name, type="nominal", **kw)


def _loop_encoding(
    y_title: str,
    log: bool,
    x_title: str = "step",
    epochs: bool = False,
    y_format: str | None = None,
    series_dash: Mapping[str, Sequence[float]] | None = None,
) -> alt.FacetedEncoding:
    """x = step, y = value, one colour and one dash pattern per loop (one legend), and a tooltip.

    epochs: the legend also names the two epoch-mean lines (EPOCH_LABELS).
    y_format: the y axis's labels.
    series_dash: {series name: dash}: the dash tells the series apart instead of the loops (a
    legend of its own), the colour the loops.
    """
    domain = [LABELS["manual"], LABELS["torch"]]
    colors = [COLORS["manual"], COLORS["torch"]]
    dashes = [[1, 0], list(STYLE["torch"]["strokeDash"])]
    if epochs:
        domain += [EPOCH_LABELS["manual"], EPOCH_LABELS["torch"]]
        colors += [EPOCH_COLORS["manual"], EPOCH_COLORS["torch"]]
        dashes += dashes
    columns = {"columns": 2} if epochs else {}  # four names in one row run past a half-width chart
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    # One notation per axis: a log axis spans decades (1e-5 to 1e+22), where "~g" would mix 0.00001,
    # 10000000000 and 1e+22; scientific notation for every label there.
    axis = alt.Axis(format=y_format or ("~e" if log else "~g"))
    return alt.FacetedEncoding(
        x=_q(alt.X, "step", title=x_title),
        y=_q(alt.Y, "value", title=y_title, scale=scale, axis=axis),
        color=_n(
            alt.Color,
            "loop",
            scale=alt.Scale(domain=domain, range=colors),
            legend=alt.Legend(
                orient="top",
                title=None,
                symbolStrokeWidth=3,
                symbolSize=300,
                labelFontSize=12,
                **columns,
            ),
        ),
        strokeDash=_dash_channel(domain, dashes, columns, series_dash),
        tooltip=[
            _n(alt.Tooltip, "loop"),
            _n(alt.Tooltip, "series"),
            _q(alt.Tooltip, "step", format=","),
            _q(alt.Tooltip, "value", format=".6g"),
        ],
    )


def _dash_channel(
    domain: list[str],
    dashes: list,
    columns: dict,
    series_dash: Mapping[str, Sequence[float]] | None,
) -> alt.StrokeDash:
    """The dash of _loop_encoding: one per loop (torch dashed), or one per series (series_dash)."""
    if series_dash is None:
        return _n(
            alt.StrokeDash,
            "loop",
            legend=alt.Legend(orient="top", title=None, **columns),
            scale=alt.Scale(domain=domain, range=dashes),
        )
    return _n(
        alt.StrokeDash,
        "series",
        legend=alt.Legend(orient="top", title=None, symbolStrokeWidth=2, columns=len(series_dash)),
        scale=alt.Scale(domain=list(series_dash), range=[list(d) for d in series_dash.values()]),
    )


def _frame(steps: np.ndarray, values: np.ndarray, **labels: str) -> pd.DataFrame:
    """The rows of one line, as few bytes as they can be: 4-byte steps, labels one-byte categories.

    Streamlit sends a chart's data as Arrow; a label repeated as text on every row was most of
    its bytes.
    """
    frame = pd.DataFrame(
        {"step": np.asarray(steps, dtype=np.int32), "value": np.asarray(values, dtype=np.float64)}
    )
    for name, label in labels.items():
        frame[name] = pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), [label])
    return frame


def _lines(
    series: list[tuple[str, str, np.ndarray, np.ndarray]],
    encoding,
    dense: bool = False,
    epochs: list[tuple[str, np.ndarray, np.ndarray]] = (),
    **props,
):
    """One line layer per (loop, series name, steps, values): manual thick, torch thin and dashed.

    Manual layers come first so torch is drawn on top; dense (thinned) lines draw torch finer still.
    epochs: (loop, steps, means) lines drawn last, over the others (which are faded then), in
    EPOCH_COLORS. A layer per series keeps every dataset within MAX_POINTS rows, well under Altair's
    default row limit, so the charts display in a notebook as they are. The encoding sits once on
    the parent: Altair deep-copies every layer's encoding when it builds a layer chart, and that
    copying was most of the build time.
    """
    order = sorted(series, key=lambda s: s[0] != "manual")
    layers = []
    for loop, name, steps, vals in order:
        mark = {
            "strokeWidth": STYLE[loop]["strokeWidth"],
            **(DENSE_TORCH if dense and loop == "torch" else {}),
        }
        if epochs and name != VAL_SERIES:  # the validation loss is not under the means
            mark["opacity"] = FADED * mark.get("opacity", 1.0)
        layers.append(
            alt.Chart(
                _frame(steps, vals, loop=LABELS[loop], series=name),
                mark=alt.MarkDef(type="line", clip=True, **mark),
            )
        )
    for loop, steps, vals in sorted(epochs, key=lambda s: s[0] != "manual"):
        frame = _frame(steps, vals, loop=EPOCH_LABELS[loop], series=EPOCH_SERIES)
        mark = alt.MarkDef(type="line", clip=True, strokeWidth=EPOCH_STYLE[loop])
        layers.append(alt.Chart(frame, mark=mark))
    return alt.LayerChart(layer=layers, encoding=encoding, **props)


def _title(main: str, notes: list[str]) -> alt.TitleParams:
    return alt.TitleParams(main, subtitle=[n for n in notes if n], anchor="start")


def _notes(result: Result, max_points: int, dropped: int, log: bool) -> list[str]:
    """Subtitle lines saying what the chart leaves out, if anything."""
    notes = []
    if _dense(result, max_points):
        notes.append(
            f"{result.steps:,} steps drawn as at most {max_points:,} points per line, "
            "peaks and troughs kept."
        )
    if dropped:
        why = "not finite, or not above 0, which a log scale cannot draw" if log else "not finite"
        notes.append(f"{dropped:,} {'value' if dropped == 1 else 'values'} left out: {why}.")
    return notes


def _dense(result: Result, max_points: int) -> bool:
    """Whether the lines are thinned: more steps than points drawn."""
    return result.steps + 1 > max_points


def _per_step_chart(
    result: Result,
    metric: str,
    title: str,
    y_title: str,
    log: bool,
    max_points: int,
    samples: int | None = None,
    validation: bool = False,
):
    """One value per step for both loops (loss or grad_norm), overlaid; samples: epoch means too;
    validation: the held-out rows' loss too, where the run has a validation split."""
    validation = validation and len(result.val_rows) > 0
    series, dropped = [], 0
    for loop in ("manual", "torch"):
        [(steps, vals)], lost = _thin(
            getattr(getattr(result, loop), metric), max_points, positive=log
        )
        series.append((loop, TRAIN_SERIES if validation else y_title, steps, vals))
        dropped = max(dropped, lost)
    if validation and len(result.val_steps):
        for loop in ("manual", "torch"):
            [(idx, vals)], lost = _thin(getattr(result, loop).val_loss, max_points, positive=log)
            series.append((loop, VAL_SERIES, np.asarray(result.val_steps)[idx] + 1, vals))
            dropped = max(dropped, lost)
    epochs, notes = [], _notes(result, max_points, dropped, log)
    length = epoch_length(result, samples)
    if length is not None:
        for loop in ("manual", "torch"):
            ends, means = epoch_means(getattr(result, loop).loss, length)
            [(idx, vals)] = downsample(means, max_points, positive=log)
            epochs.append((loop, ends[idx], vals))
        notes = _epoch_note(result, samples, length) + notes
    dash = None
    if validation:
        notes = _validation_note(result) + notes
        dash = {TRAIN_SERIES: (1, 0), VAL_SERIES: VAL_DASH}
        if epochs:
            dash[EPOCH_SERIES] = (1, 0)
    heading = _title(f"{title}{' (log scale)' if log else ''}", notes)
    return _lines(
        series,
        _loop_encoding(y_title, log, epochs=bool(epochs), series_dash=dash),
        _dense(result, max_points),
        epochs,
        title=heading,
        height=HEIGHT,
        autosize=alt.AutoSizeParams(**AUTOSIZE),
    )


def _validation_note(result: Result) -> list[str]:
    """What the dashed lines are: subtitle lines short enough for a half-width chart."""
    every, held = result.config.eval_interval, len(result.val_rows)
    lines = [
        f"Solid: each step's training batch. Dashed: the loss on the {held:,} held-out rows",
        f"after every {every:,} steps, drawn at the next step (its batch loss uses those weights).",
    ]
    if not len(result.val_steps):
        lines.append(
            f"No validation pass: eval_every {every:,} is more than the run's {result.steps:,} "
            "steps."
            if result.done
            else f"No validation pass in these first {result.steps:,} steps yet."
        )
    return lines


def epoch_length(result: Result, samples: int | None) -> int | None:
    """Steps per epoch (one pass over the training rows) where the loss chart draws epoch means,
    or None.

    samples is the data's; the held-out rows (Result.val_rows) are not trained on. Minibatches
    only (a full batch makes every step an epoch, its mean the loss itself), with accumulate > 1
    only where a whole number of steps (two or more) makes an epoch, and two whole epochs at
    least, so the means make a line.
    """
    cfg = result.config
    if samples is None:
        return None
    train = samples - len(result.val_rows)
    if cfg.batch_size >= train:
        return None
    # The last batch of an epoch may be short, as in lib.data, unless drop_last leaves it out.
    batches = train // cfg.batch_size if cfg.drop_last else -(-train // cfg.batch_size)
    if batches % cfg.accumulate:
        return None
    length = batches // cfg.accumulate
    return length if length >= 2 and result.steps >= 2 * length else None


def epoch_means(loss: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(last step of each whole epoch, mean of its `length` batch losses).

    An unfinished last epoch is left out.
    """
    epochs = len(loss) // length
    means = (
        np.asarray(loss[: epochs * length], dtype=np.float64).reshape(epochs, length).mean(axis=1)
    )
    return length * np.arange(1, epochs + 1) - 1, means


def _epoch_note(result: Result, samples: int, length: int) -> list[str]:
    """What this run's epoch-mean lines are: subtitle lines short enough for a half-width chart."""
    cfg = result.config
    batch, k = cfg.batch_size, cfg.accumulate
    train = samples - len(result.val_rows)
    batches = length * k
    last = batch if cfg.drop_last else train - batch * (batches - 1)
    size = f"the last of {last:,}" if last != batch else f"each of {batch:,}"
    if k > 1:
        size += f", {k:,} to a step"
    rows = f"the {train:,} training rows" if len(result.val_rows) else f"the {samples:,} samples"
    losses = "batch losses" if k == 1 else "step losses"
    lines = [
        f"Dark lines: the plain mean of each epoch's {length:,} {losses},",
        f"drawn at the epoch's last step (an epoch: one pass over {rows},",
        f"in {batches:,} batches, {size}).",
    ]
    if cfg.drop_last and train % batch:
        lines[-1] += f" drop_last leaves out the other {train % batch:,} rows of each epoch."
    left = result.steps % length
    if left:
        unit = "batches" if k == 1 else "steps"
        lines[-1] += f" The unfinished last epoch ({left:,} of {length:,} {unit}) is left out."
    return lines


def loss_chart(
    result: Result, log: bool = True, max_points: int = MAX_POINTS, samples: int | None = None
) -> alt.LayerChart:
    """Loss of each step's batch, before its update, for both loops; with a validation split, the
    held-out rows' loss of both loops too, dashed.

    samples: the data's number of samples; given, each epoch's mean batch loss is drawn over them.
    """
    name = LOSS_NAMES[result.config.loss]
    return _per_step_chart(
        result, "loss", f"Loss per step: {name}", "loss", log, max_points, samples, validation=True
    )


def grad_norm_chart(
    result: Result, log: bool = True, max_points: int = MAX_POINTS
) -> alt.LayerChart:
    """L2 norm of each step's gradient for both loops."""
    return _per_step_chart(
        result, "grad_norm", "Gradient norm per step", "‖gradient‖", log, max_points
    )


def lr_chart(result: Result, max_points: int = MAX_POINTS) -> alt.LayerChart:
    """The learning rate each optimizer step used, for both loops: History.lr (torch's
    optimizer.param_groups[0]["lr"], the hand schedule's own number)."""
    name = TORCH_SCHEDULES.get(result.config.scheduler, "no schedule")
    series, dropped = [], 0
    for loop in ("manual", "torch"):
        values = getattr(result, loop).lr
        values = np.zeros(0) if values is None else values
        [(steps, vals)], lost = _thin(values, max_points)
        series.append((loop, "lr", steps, vals))
        dropped = max(dropped, lost)
    gap = np.abs(np.asarray(result.manual.lr) - np.asarray(result.torch.lr))
    gap = gap[np.isfinite(gap)]
    notes = [
        "The lr each optimizer step used: torch's optimizer.param_groups[0]['lr'] as",
        f"{name} set it, and the hand loop's from the same formula.",
        f"Largest |manual − torch| over the steps: {float(gap.max()) if gap.size else 0.0:.3g}.",
    ]
    return _lines(
        series,
        _loop_encoding("lr", False),
        _dense(result, max_points),
        title=_title(
            f"Learning rate per step: {name}", notes + _notes(result, max_points, dropped, False)
        ),
        height=HEIGHT,
        autosize=alt.AutoSizeParams(**AUTOSIZE),
    )


def _end_labels(
    series: list, x_title: str, y_title: str, height: int, also=None
) -> list[alt.Chart]:
    """A text layer naming each series at the end of its manual line: one colour per loop, readable.

    Ends closer than LABEL_SPACING pixels (on a plot `height` px tall spanning every drawn value,
    and `also`) are moved apart, so lines ending together (an MLP's weights) keep legible names.
    """
    ends = [
        (name, steps[-1], vals[-1])
        for loop, name, steps, vals in series
        if loop == "manual" and len(steps)
    ]
    if not ends:
        return []
    drawn = [vals for _, _, _, vals in series if len(vals)] + (
        [np.asarray(also, dtype=np.float64)] if also is not None else []
    )
    everything = np.concatenate(drawn)
    everything = everything[np.isfinite(everything)]
    low, high = float(everything.min()), float(everything.max())
    frame = pd.DataFrame(ends, columns=["series", "step", "value"])
    frame["at"] = spread(
        frame["value"].to_numpy(), (high - low) * LABEL_SPACING / height, low, high
    )
    text = alt.FacetedEncoding(
        x=_q(alt.X, "step", title=x_title),
        y=_q(alt.Y, "at", title=y_title),
        text=_n(alt.Text, "series"),
        tooltip=[
            _n(alt.Tooltip, "series"),
            _q(alt.Tooltip, "value", format=".6g", title="last value"),
        ],
    )
    mark = alt.MarkDef(
        type="text", align="left", baseline="middle", dx=5, fontSize=11, color="#333"
    )
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
    """Every weight after each step (row 0 is the init) for both loops, maybe with target rules."""
    total = len(result.weight_names)
    shown = min(total, max_series)
    names = list(result.weight_names[:shown])
    series, dropped = [], 0
    for loop in ("manual", "torch"):
        pairs, lost = _thin(getattr(result, loop).weights[:, :shown], max_points)
        series += [
            (loop, name, steps, vals) for name, (steps, vals) in zip(names, pairs, strict=True)
        ]
        dropped = max(dropped, lost)
    notes = [f"Showing the first {shown} of {total} weights." if shown < total else ""]
    if reference is not None:
        notes.append(f"Dotted grey lines: the {reference_label}.")
    notes += _notes(result, max_points, dropped, False)
    x_title = "steps taken (0 = initial weights)"
    layers = [
        _lines(series, _loop_encoding("weight value", False, x_title), _dense(result, max_points))
    ]
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)[:shown]
    layers += _end_labels(series, x_title, "weight value", HEIGHT + 40, ref)
    if ref is not None:
        rules = pd.DataFrame({"series": names[: len(ref)], "value": ref})
        rules = rules[np.isfinite(rules["value"])]
        rule = alt.FacetedEncoding(
            y=_q(alt.Y, "value"),
            tooltip=[
                _n(alt.Tooltip, "series", title=reference_label),
                _q(alt.Tooltip, "value", format=".6g"),
            ],
        )
        mark = alt.MarkDef(type="rule", strokeDash=[2, 3], color="#888", strokeWidth=1.5)
        layers.insert(0, alt.Chart(rules, mark=mark, encoding=rule))
    heading = _title("Weights per step", notes)
    return alt.LayerChart(
        layer=layers, title=heading, height=HEIGHT + 40, autosize=alt.AutoSizeParams(**AUTOSIZE)
    )


def param_norms_chart(result: Result, max_points: int = MAX_POINTS) -> alt.LayerChart:
    """The L2 norm of each parameter tensor (weight, bias; W1, b1, W2, b2) per step, both loops.

    Every tensor's norm is recorded even when only some of a big model's weights are, so this chart
    covers every parameter where the weights chart shows a few.
    """
    names = list(result.tensor_names)
    series, dropped = [], 0
    for loop in ("manual", "torch"):
        pairs, lost = _thin(getattr(result, loop).param_norms, max_points)
        series += [
            (loop, name, steps, vals) for name, (steps, vals) in zip(names, pairs, strict=True)
        ]
        dropped = max(dropped, lost)
    x_title = "steps taken (0 = initial weights)"
    layers = [
        _lines(series, _loop_encoding("‖tensor‖", False, x_title), _dense(result, max_points))
    ]
    layers += _end_labels(series, x_title, "‖tensor‖", HEIGHT)
    notes = ["Every parameter tensor, whole: its L2 norm after each step."]
    heading = _title("Parameter norms per step", notes + _notes(result, max_points, dropped, False))
    return alt.LayerChart(
        layer=layers, title=heading, height=HEIGHT, autosize=alt.AutoSizeParams(**AUTOSIZE)
    )


def _rounding_note(result: Result) -> str:
    """The run's largest difference beside one float64 rounding of its largest weight.

    A rounding is relative: 1.1e-16 times the number.
    """
    weights = np.abs(result.torch.weights)
    finite = weights[np.isfinite(weights)]
    largest = float(finite.max()) if finite.size else 0.0
    # A rounding's relative size: half the gap between float64 numbers near 1.
    ulp = np.finfo(np.float64).eps / 2
    size = (
        f"about {ulp * largest:.2g} at this run's largest weight, {largest:.3g}"
        if largest > 1
        else f"below {ulp:.2g} for these weights, all smaller than 1"
    )
    return (
        f"Largest over the run: {result.max_abs_diff:.3g}. "
        f"One float64 rounding is {ulp:.2g} × the number: {size}."
    )


def diff_chart(result: Result, max_points: int = MAX_POINTS) -> alt.Chart:
    """Largest |manual - torch| over the weights per step: float64 rounding, if the loops agree."""
    [(steps, vals)], dropped = _thin(result.step_diff, max_points)
    notes = [_rounding_note(result)]
    notes += _notes(result, max_points, dropped, False)
    encoding = alt.FacetedEncoding(
        x=_q(alt.X, "step", title="steps taken (0 = initial weights)"),
        y=_q(alt.Y, "value", title="max |manual − torch|", axis=alt.Axis(format=".1e")),
        tooltip=[
            _q(alt.Tooltip, "step", format=","),
            _q(alt.Tooltip, "value", format=".3e", title="difference"),
        ],
    )
    return alt.Chart(
        _frame(steps, vals),
        mark=alt.MarkDef(type="line", color="#2ca02c", strokeWidth=1.5, clip=True),
        encoding=encoding,
        title=_title("|manual − torch| per step, largest over the weights", notes),
        height=HEIGHT,
        autosize=alt.AutoSizeParams(**AUTOSIZE),
    )


def live_points(result: Result, param_norms: bool = False, samples: int | None = None) -> int:
    """Points per line for a live redraw: LIVE_POINTS, fewer where the charts have many lines.

    The lines share LIVE_ROWS points in all. param_norms: whether param_norms_chart is drawn too;
    samples: as all_charts takes it (epoch means).
    """
    # The loss, the gradient norm, the difference and the weights.
    lines = 2 + 2 + 1 + 2 * min(len(result.weight_names), MAX_WEIGHT_SERIES)
    lines += 2 * len(result.tensor_names) if param_norms else 0
    lines += 2 if epoch_length(result, samples) is not None else 0
    lines += 2 if len(result.val_rows) else 0  # the validation loss
    lines += 2 if result.config.scheduler is not None else 0  # the lr chart
    return min(LIVE_POINTS, LIVE_ROWS // lines)


def all_charts(
    result: Result,
    log_loss: bool = True,
    reference: np.ndarray | None = None,
    reference_label: str = "least-squares solution",
    max_points: int = MAX_POINTS,
    samples: int | None = None,
) -> dict[str, alt.TopLevelMixin]:
    """The four charts of a Result by name: "loss", "weights", "grad_norm", "diff", and "lr"
    when the run has a schedule.

    log_loss puts the loss and the gradient norm on log scales; samples (the data's) adds the epoch
    means to the loss chart.
    """
    charts = {
        "loss": loss_chart(result, log=log_loss, max_points=max_points, samples=samples),
        "weights": weights_chart(result, reference, reference_label, max_points=max_points),
        "grad_norm": grad_norm_chart(result, log=log_loss, max_points=max_points),
        "diff": diff_chart(result, max_points=max_points),
    }
    if result.config.scheduler is not None:
        charts["lr"] = lr_chart(result, max_points=max_points)
    return charts


# ---------------------------------------------------------------- two-class runs (loss "bce")


def accuracy_points(data: Dataset, result: Result) -> int:
    """How many steps accuracy_chart measures accuracy at: ACCURACY_POINTS, fewer for big data.

    Fewer so that the work stays within ACCURACY_WORK.
    """
    work = data.m * max(
        1, len(result.recorded if result.recorded is not None else result.weight_names)
    )
    return max(2, min(ACCURACY_POINTS, ACCURACY_WORK // work))


def accuracy_chart(data: Dataset, result: Result) -> alt.LayerChart:
    """Share of all samples each loop classifies right, after evenly spread steps.

    As lib.classify.accuracy measures it. A ValueError (from lib.classify) for a run that is not a
    two-class one or whose weights were not all kept.
    """
    points = accuracy_points(data, result)
    steps, manual, torch = classify.accuracy(data, result, points)
    series = []
    for loop, acc in (("manual", manual), ("torch", torch)):
        keep = np.isfinite(acc)
        series.append((loop, "accuracy", steps[keep] + 1, acc[keep]))
    finals = [acc[np.isfinite(acc)] for acc in (manual, torch)]
    notes = [
        f"The share of all {data.m:,} samples on their class's side (logit > 0 means class 1),",
        f"measured after {len(steps):,} evenly spread steps.",
    ]
    if all(len(f) for f in finals):
        notes[-1] += f" Last: manual {finals[0][-1]:.1%}, torch {finals[1][-1]:.1%}."
    lost = int(np.sum(~np.isfinite(manual)) + np.sum(~np.isfinite(torch)))
    if lost:
        notes.append(f"{lost:,} measurement(s) left out: their weights are not finite.")
    encoding = _loop_encoding("accuracy", False, "steps taken", y_format=".3~%")
    encoding["tooltip"][-1] = _q(alt.Tooltip, "value", format=".2%")
    return _lines(
        series,
        encoding,
        title=_title("Accuracy on the whole data", notes),
        height=HEIGHT,
        autosize=alt.AutoSizeParams(**AUTOSIZE),
    )


def boundary_step(result: Result) -> int | None:
    """The last step after which both loops' weights are finite; None if none.

    A diverged run's last step may not be.
    """
    for step in range(result.steps - 1, max(-1, result.steps - 3), -1):
        if (
            np.isfinite(result.manual.weights[step + 1]).all()
            and np.isfinite(result.torch.weights[step + 1]).all()
        ):
            return step
    return None


def contour(x1: np.ndarray, x2: np.ndarray, p: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Segments (x, y, x2, y2) of the line where the gridded p (p[b, a] at x1[a], x2[b]) = level.

    Marching squares: on each cell edge whose ends lie on either side of level the crossing is
    placed by linear interpolation, and a cell's crossings are joined in pairs; where all four edges
    cross (a saddle), the value at the cell's centre decides which corners the line cuts off.
    """
    f = np.asarray(p, dtype=np.float64) - level
    above = f > 0
    segments = []

    def cross(b0, a0, b1, a1):  # the crossing on the edge from corner (b0, a0) to corner (b1, a1)
        t = f[b0, a0] / (f[b0, a0] - f[b1, a1])
        return x1[a0] + t * (x1[a1] - x1[a0]), x2[b0] + t * (x2[b1] - x2[b0])

    corners = above[:-1, :-1].astype(int) + above[:-1, 1:] + above[1:, :-1] + above[1:, 1:]
    mixed = (
        (corners > 0)
        & (corners < 4)
        & np.isfinite(f[:-1, :-1] + f[:-1, 1:] + f[1:, :-1] + f[1:, 1:])
    )
    for b, a in zip(*np.nonzero(mixed), strict=True):
        edges = [
            (b, a, b, a + 1),
            (b, a + 1, b + 1, a + 1),
            (b + 1, a + 1, b + 1, a),
            (b + 1, a, b, a),
        ]
        points = [
            cross(*edge) for edge in edges if above[edge[0], edge[1]] != above[edge[2], edge[3]]
        ]
        if len(points) == 2:
            segments.append((*points[0], *points[1]))
        elif len(points) == 4:  # bottom, right, top, left
            centre = (f[b, a] + f[b, a + 1] + f[b + 1, a] + f[b + 1, a + 1]) / 4 > 0
            pairs = ((0, 1), (2, 3)) if centre == above[b, a] else ((0, 3), (1, 2))
            segments += [(*points[i], *points[j]) for i, j in pairs]
    return np.array(segments, dtype=np.float64).reshape(-1, 4)


def boundary_chart(
    data: Dataset, result: Result, size: int = BOUNDARY_GRID, max_samples: int = BOUNDARY_SAMPLES
) -> alt.LayerChart:
    """Where each loop puts p = 0.5 over the two features, on the hand loop's p, with the data.

    Both lines overlaid, the data by class. After the last step whose weights are finite
    (boundary_step). A ValueError (from lib.classify, or for a run with no finite weights) where
    there is no picture to draw.
    """
    step = boundary_step(result)
    if step is None:
        raise ValueError("no step left both loops' weights finite, so there is no boundary to draw")
    grid = classify.boundary(data, result, step, size)
    x0, y0, dx, dy = _cell_edges(grid)
    x_scale = alt.Scale(domain=[x0 - dx / 2, float(grid.x1[-1]) + dx / 2], nice=False, zero=False)
    y_scale = alt.Scale(domain=[y0 - dy / 2, float(grid.x2[-1]) + dy / 2], nice=False, zero=False)
    pick = np.arange(data.m)
    if data.m > max_samples:
        pick = np.unique(np.linspace(0, data.m - 1, max_samples).round().astype(int))
    layers = [
        _shading(grid, size, list(data.feature_names), x_scale, y_scale),
        _class_dots(data, pick, x_scale, y_scale),
    ]
    missing = []
    for loop, p in (("manual", grid.manual), ("torch", grid.torch)):
        segments = contour(grid.x1, grid.x2, p)
        if not len(segments):
            missing.append(LABELS[loop])
            continue
        layers.append(_boundary_line(segments, loop, x_scale, y_scale))
    notes = _boundary_notes(result, step, grid, size, missing)
    if len(pick) < data.m:
        notes.append(
            f"{len(pick):,} of the {data.m:,} samples are drawn, evenly spread through the data."
        )
    return alt.LayerChart(
        layer=layers,
        title=_title("Decision boundary of both loops", notes),
        height=HEIGHT + 100,
        autosize=alt.AutoSizeParams(**AUTOSIZE),
    )


def _cell_edges(grid: classify.Boundary) -> tuple[float, float, float, float]:
    """(x0, y0, dx, dy): the first cell's centre and the cell size, as Python floats.

    The cell edges are written into Vega expressions, where numpy's repr would not parse.
    """
    x0, y0 = float(grid.x1[0]), float(grid.x2[0])
    return x0, y0, float(grid.x1[1]) - x0, float(grid.x2[1]) - y0


def _shading(
    grid: classify.Boundary, size: int, names: list[str], x_scale: alt.Scale, y_scale: alt.Scale
) -> alt.Chart:
    """The hand loop's p(class 1) over the grid, one rectangle per cell."""
    x0, y0, dx, dy = _cell_edges(grid)
    b, a = np.divmod(np.arange(size * size), size)
    cells = pd.DataFrame(
        {
            "a": a.astype(np.int16),
            "b": b.astype(np.int16),
            "p": grid.manual.ravel().astype(np.float32),
        }
    )
    return (
        alt.Chart(cells, mark=alt.MarkDef(type="rect", opacity=0.55))
        .transform_calculate(
            x=f"{x0 - dx / 2!r} + datum.a * {dx!r}",
            x2=f"{x0 + dx / 2!r} + datum.a * {dx!r}",
            y=f"{y0 - dy / 2!r} + datum.b * {dy!r}",
            y2=f"{y0 + dy / 2!r} + datum.b * {dy!r}",
        )
        .encode(
            x=_q(alt.X, "x", title=names[0], scale=x_scale),
            x2=alt.X2(field="x2"),
            y=_q(alt.Y, "y", title=names[1], scale=y_scale),
            y2=alt.Y2(field="y2"),
            color=_q(
                alt.Color,
                "p",
                title="p(class 1), hand loop",
                scale=alt.Scale(scheme="purplegreen", domain=[0, 1]),
                legend=alt.Legend(orient="right", gradientLength=120),
            ),
            tooltip=[_q(alt.Tooltip, "p", format=".3f", title="p(class 1), hand loop")],
        )
    )


def _class_dots(
    data: Dataset, pick: np.ndarray, x_scale: alt.Scale, y_scale: alt.Scale
) -> alt.Chart:
    """The picked data points, filled by class."""
    samples = pd.DataFrame({"x": data.X[pick, 0], "y": data.X[pick, 1]})
    samples["class"] = pd.Categorical.from_codes(
        (data.y[pick] > 0.5).astype(np.int8), ["class 0", "class 1"]
    )
    mark = alt.MarkDef(type="circle", size=28, stroke="white", strokeWidth=0.6, opacity=1)
    fill = alt.Scale(domain=["class 0", "class 1"], range=list(CLASS_COLORS))
    return alt.Chart(samples, mark=mark).encode(
        x=_q(alt.X, "x", scale=x_scale),
        y=_q(alt.Y, "y", scale=y_scale),
        fill=_n(alt.Fill, "class", scale=fill, legend=alt.Legend(orient="right", title=None)),
    )


def _boundary_line(
    segments: np.ndarray, loop: str, x_scale: alt.Scale, y_scale: alt.Scale
) -> alt.Chart:
    """One loop's p = 0.5 line, drawn as its segments, in the loop's colour and dash."""
    frame = pd.DataFrame(segments, columns=["x", "y", "x2", "y2"])
    frame["loop"] = pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), [LABELS[loop]])
    mark = alt.MarkDef(type="rule", strokeWidth=STYLE[loop]["strokeWidth"], strokeCap="round")
    domain = [LABELS["manual"], LABELS["torch"]]
    colors = alt.Scale(domain=domain, range=[COLORS["manual"], COLORS["torch"]])
    dashes = alt.Scale(domain=domain, range=[[1, 0], list(STYLE["torch"]["strokeDash"])])
    return alt.Chart(frame, mark=mark).encode(
        x=_q(alt.X, "x", scale=x_scale),
        y=_q(alt.Y, "y", scale=y_scale),
        x2=alt.X2(field="x2"),
        y2=alt.Y2(field="y2"),
        stroke=_n(
            alt.Stroke,
            "loop",
            scale=colors,
            legend=alt.Legend(orient="top", title=None, symbolStrokeWidth=3),
        ),
        strokeDash=_n(
            alt.StrokeDash, "loop", legend=alt.Legend(orient="top", title=None), scale=dashes
        ),
    )


def _boundary_notes(
    result: Result, step: int, grid: classify.Boundary, size: int, missing: list[str]
) -> list[str]:
    """The title's notes: the step, what the shading is, how close torch's p is, lines not drawn."""
    gap = np.abs(grid.manual - grid.torch)
    gap = float(gap.max()) if np.isfinite(gap).all() else None
    match = "" if gap is None else " exactly" if gap == 0 else f" to within {gap:.1g}"
    notes = [
        f"After {step + 1:,} steps"
        + (
            f" (of {result.steps:,}: the last step's weights are not finite)"
            if step + 1 < result.steps
            else ""
        )
        + ": the lines are p = 0.5, where each loop's classes meet.",
        "The shading is the hand loop's p(class 1)" + (";" if gap is not None else "."),
    ]
    if gap is not None:
        notes.append(f"torch's matches it{match} on this {size}×{size} grid.")
    if missing:
        notes.append(f"p = 0.5 does not cross this window for {' or '.join(missing)}.")
    return notes
