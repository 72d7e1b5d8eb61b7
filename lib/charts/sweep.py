"""The learning-rate x batch-size map: a heatmap of each loop's final loss, and one of how far the
two loops are apart, cell by cell (lib.sweep's Sweep)."""

from __future__ import annotations

import math
from types import MappingProxyType

import altair as alt
import numpy as np
import pandas as pd

from ..lessons.sweep import Sweep, color_cap, lr_edges
from .runs import AUTOSIZE, LABELS

MAP_HEIGHT = 40  # px per batch-size row
DIVERGED_COLOR = "#9e9e9e"
LIMIT_COLOR = "#d62728"
ZERO_DIFF = 1e-17  # a cell whose loops agree exactly is coloured as this difference
SELECTION = "cell"  # the click selection's name: st.altair_chart's state.selection[SELECTION]
TITLES = MappingProxyType(
    {"manual": f"Final loss, {LABELS['manual']}", "torch": f"Final loss, {LABELS['torch']}"}
)


def batch_label(batch_size: int, full: int | None) -> str:
    """A batch size as the map's rows name it: "full (200)" from the training rows up."""
    return f"full ({full:,})" if full is not None and batch_size >= full else f"{batch_size:,}"


def map_cells(sweep: Sweep, full: int | None = None) -> pd.DataFrame:
    """One row per finished (cell, loop): where its rectangle goes, its colour value and labels.

    log_loss is log10 of the final loss (NaN where the run diverged or the loss is not > 0); text
    is "✕ k" on a cell that diverged at step k.
    """
    frame = sweep.frame()
    lo, hi = lr_edges(sweep.lrs)
    where = {lr: i for i, lr in enumerate(sweep.lrs)}
    index = frame["lr"].map(where).to_numpy(dtype=int)
    frame["lr_lo"], frame["lr_hi"] = lo[index], hi[index]
    frame["batch"] = [batch_label(b, full) for b in frame["batch_size"]]
    loss = frame["final_loss"].to_numpy(dtype=np.float64)
    diverged = frame["diverged_at"].notna().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        log_loss = np.where(~diverged & np.isfinite(loss) & (loss > 0), np.log10(loss), np.nan)
    frame["log_loss"] = log_loss
    frame["diverged"] = diverged
    frame["text"] = [
        f"✕ {int(k)}" if d else "" for k, d in zip(frame["diverged_at"], diverged, strict=True)
    ]
    frame["loop"] = frame["loop"].astype(str)
    frame["diverged_at"] = frame["diverged_at"].astype("float64")  # Arrow and Vega take NaN
    return frame


def _axes(sweep: Sweep, full: int | None) -> tuple[alt.X, alt.Y, list[str], alt.Scale]:
    """The lr axis (log, the whole grid's extent), the batch-size rows, and the lr scale."""
    lo, hi = lr_edges(sweep.lrs)
    rows = list(dict.fromkeys(batch_label(b, full) for b in sweep.batch_sizes))
    scale = alt.Scale(type="log", domain=[float(lo[0]), float(hi[-1])], nice=False)
    x = alt.X(
        "lr_lo:Q",
        title="learning rate (log scale)",
        scale=scale,
        axis=alt.Axis(format="~g", values=[float(v) for v in sweep.lrs], labelAngle=-45),
    )
    y = alt.Y("batch:O", title="batch size", sort=rows, scale=alt.Scale(domain=rows))
    return x, y, rows, scale


def loss_domain(sweep: Sweep) -> tuple[float, float] | None:
    """The log10 final-loss range of the colours, shared by the two loops' maps: from the lowest
    finished cell to the highest, but at most color_cap (the largest first-step loss)."""
    values = map_cells(sweep)["log_loss"].dropna()
    if values.empty:
        return None
    low, high = float(values.min()), float(values.max())
    cap = color_cap(sweep)
    if cap is not None:
        high = min(high, math.log10(cap))
    return (low, high) if high > low else (low - 0.5, low + 0.5)


def loss_map_chart(
    sweep: Sweep,
    loop: str,
    full: int | None = None,
    limit: float | None = None,
    select: bool = False,
) -> alt.LayerChart:
    """One loop's final loss over the grid: colour is log10 of the last step's batch loss, grey
    cells diverged (their text is the step), blank cells have not finished.

    full: the training rows (batch sizes from it up are labelled full batch); limit: an lr drawn
    as a dashed vertical line (2 / lambda_max); select: clicking a cell selects it (SELECTION).
    """
    cells = map_cells(sweep, full)
    cells = cells[cells["loop"] == loop]
    x, y, rows, scale = _axes(sweep, full)
    domain = loss_domain(sweep)
    tooltip = [
        alt.Tooltip("lr:Q", format="~g"),
        alt.Tooltip("batch_size:Q", title="batch size"),
        alt.Tooltip("final_loss:Q", title="final loss", format=".4g"),
        alt.Tooltip("best_loss:Q", title="best loss", format=".4g"),
        alt.Tooltip("diverged_at:Q", title="diverged at step"),
    ]
    color = alt.Color(
        "log_loss:Q",
        title="log10 final loss",
        # no domain when no cell has a finite positive loss (every one diverged, say)
        scale=alt.Scale(
            scheme="viridis", clamp=True, **({"domain": list(domain)} if domain else {})
        ),
    )
    base = alt.Chart(cells).encode(x=x, x2="lr_hi", y=y, tooltip=tooltip)
    finished = base.transform_filter("!datum.diverged").mark_rect().encode(color=color)
    if select:
        pick = alt.selection_point(name=SELECTION, fields=["lr", "batch_size"], on="click")
        finished = finished.add_params(pick)
    layers = [
        finished,
        base.transform_filter("datum.diverged").mark_rect(color=DIVERGED_COLOR),
        alt.Chart(cells)
        .transform_filter("datum.diverged")
        .transform_calculate(mid="sqrt(datum.lr_lo * datum.lr_hi)")
        .mark_text(fontSize=11, color="white")
        .encode(x=alt.X("mid:Q", scale=scale), y=y, text="text:N"),
    ]
    if limit is not None and math.isfinite(limit) and scale.domain[0] < limit < scale.domain[1]:
        layers.append(_limit_rule(limit, scale))
    return (
        alt.layer(*layers)
        .properties(title=TITLES[loop], height=MAP_HEIGHT * len(rows), autosize=dict(AUTOSIZE))
        .configure_view(strokeWidth=0)
    )


def _limit_rule(limit: float, scale: alt.Scale) -> alt.LayerChart:
    """A dashed vertical line at lr = limit, labelled 2/λ_max."""
    spot = pd.DataFrame({"lr": [limit], "label": [f"2/λ_max = {limit:.3g}"]})
    rule = (
        alt.Chart(spot)
        .mark_rule(color=LIMIT_COLOR, strokeDash=[6, 3], strokeWidth=2)
        .encode(x=alt.X("lr:Q", scale=scale))
    )
    text = (
        alt.Chart(spot)
        .mark_text(color=LIMIT_COLOR, align="right", dx=-4, baseline="top", y=2)
        .encode(x=alt.X("lr:Q", scale=scale), text="label:N")
    )
    return alt.layer(rule, text)


def diff_map_chart(sweep: Sweep, full: int | None = None) -> alt.LayerChart:
    """Per cell, the largest |manual − torch| over every weight and finite step (log colour; a
    cell where they agree exactly is coloured as ZERO_DIFF)."""
    cells = map_cells(sweep, full)
    cells = cells[cells["loop"] == "manual"].copy()
    x, y, rows, scale = _axes(sweep, full)
    diff = cells["max_abs_diff"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cells["log_diff"] = np.log10(np.maximum(diff, ZERO_DIFF))
    cells["diff_text"] = [f"{d:.0e}" if math.isfinite(d) else "" for d in diff]
    tooltip = [
        alt.Tooltip("lr:Q", format="~g"),
        alt.Tooltip("batch_size:Q", title="batch size"),
        alt.Tooltip("max_abs_diff:Q", title="largest |manual − torch|", format=".3g"),
        alt.Tooltip("diverged_at:Q", title="diverged at step"),
    ]
    rect = (
        alt.Chart(cells)
        .mark_rect()
        .encode(
            x=x,
            x2="lr_hi",
            y=y,
            color=alt.Color(
                "log_diff:Q", title="log10 |manual − torch|", scale=alt.Scale(scheme="oranges")
            ),
            tooltip=tooltip,
        )
    )
    text = (
        alt.Chart(cells)
        .transform_calculate(mid="sqrt(datum.lr_lo * datum.lr_hi)")
        .mark_text(fontSize=10)
        .encode(x=alt.X("mid:Q", scale=scale), y=y, text="diff_text:N")
    )
    return (
        alt.layer(rect, text)
        .properties(
            title="Largest |manual − torch| of the weights, per cell",
            height=MAP_HEIGHT * len(rows),
            autosize=dict(AUTOSIZE),
        )
        .configure_view(strokeWidth=0)
    )
