"""The Loss landscape's picture: the loss over two weights in colour bands, with the path each loop
took in those two weights drawn on top, its marker at the step shown, and the least-squares answer.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ..engine.lockstep import Result
from ..lessons.landscape import Surface
from .runs import COLORS, LABELS

MAX_PATH_POINTS = 5_000  # per loop: a million-step path is thinned before it is sent to the browser
MAX_DOTS = 400  # steps drawn as dots on the hand loop's line; beyond this they merge into the line
BANDS = 10  # colour bands, like contour levels
# Low loss light, high loss grey: both paths stay visible on every band.
BAND_COLORS = ("#ffffff", "#6b6f80")
HEIGHT = 520
LOOPS = ("manual", "torch")


def surface_cells(s: Surface) -> tuple[pd.DataFrame, int]:
    """The map's cells (a0 to a1 by b0 to b1, centred on the grid points) whose loss is finite, and
    how many cells were left out because their loss overflowed."""
    a_step, b_step = np.diff(s.a_values[:2])[0], np.diff(s.b_values[:2])[0]
    A, B = np.meshgrid(s.a_values, s.b_values)
    cells = pd.DataFrame(
        {
            "a0": (A - a_step / 2).ravel(),
            "a1": (A + a_step / 2).ravel(),
            "b0": (B - b_step / 2).ravel(),
            "b1": (B + b_step / 2).ravel(),
            "loss": s.loss.ravel(),
        }
    )
    finite = np.isfinite(cells["loss"])
    return cells[finite], int((~finite).sum())


def band_edges(loss: pd.Series) -> tuple[list[float], list[str]]:
    """Contour-like bands: edges at quantiles of the loss, so each band holds about the same number
    of cells and every band is visible on the map; and one colour per band, light to grey."""
    quantiles = np.quantile(loss, np.linspace(0, 1, BANDS + 1)[1:-1])
    levels = np.unique([float(f"{v:.2g}") for v in quantiles])
    low, high = (np.array(list(bytes.fromhex(c[1:])), dtype=float) for c in BAND_COLORS)
    ramp = [
        "#" + bytes(np.round(low + (high - low) * t).astype(int).tolist()).hex()
        for t in np.linspace(0, 1, len(levels) + 1)
    ]
    return list(levels), ramp


def path_rows(k: int) -> np.ndarray:
    """Rows 0..k of the weight history to draw: all of them, or every early step and fewer later
    ones."""
    if k + 1 <= MAX_PATH_POINTS:
        return np.arange(k + 1)
    # Paths move most at the start: keep every early step, then steps spaced evenly in log(step).
    early = np.arange(MAX_PATH_POINTS // 2)
    later = np.geomspace(MAX_PATH_POINTS // 2, k, MAX_PATH_POINTS // 2).round().astype(int)
    return np.unique(np.concatenate([early, later, [k]]))


def path_frame(result: Result, k: int, i: int, j: int) -> pd.DataFrame:
    """Both loops' paths in weights i and j up to step k (thinned by path_rows), finite points
    only: columns step, a, b and loop (the loop's label)."""
    rows = path_rows(k)
    paths = []
    for loop in LOOPS:
        w = getattr(result, loop).weights[rows]
        keep = np.isfinite(w[:, [i, j]]).all(axis=1)
        paths.append(
            pd.DataFrame(
                {"step": rows[keep], "a": w[keep, i], "b": w[keep, j], "loop": LABELS[loop]}
            )
        )
    return pd.concat(paths, ignore_index=True)


def marker_frame(result: Result, k: int, i: int, j: int) -> pd.DataFrame:
    """Where each loop's weights i and j are after k steps, where finite."""
    now = pd.DataFrame(
        {
            "a": [result.manual.weights[k, i], result.torch.weights[k, i]],
            "b": [result.manual.weights[k, j], result.torch.weights[k, j]],
            "loop": [LABELS["manual"], LABELS["torch"]],
            "step": [k, k],
        }
    )
    return now[np.isfinite(now[["a", "b"]]).all(axis=1)]


def landscape_chart(
    s: Surface, result: Result, k: int, names: tuple[str, str], best: np.ndarray | None = None
) -> alt.LayerChart:
    """The map of surface s in bands, both loops' paths in its two weights up to step k, the
    markers of step k (a ring for the hand loop, a cross for torch) and, given the least-squares
    weights `best`, a diamond where they are. names: the two weights' names, x axis first.
    ValueError when no cell of the map has a finite loss."""
    cells, _ = surface_cells(s)
    if cells.empty:
        raise ValueError("the loss overflows float64 everywhere on this map")
    x_name, y_name = names
    x_scale = alt.Scale(
        domain=[float(cells["a0"].min()), float(cells["a1"].max())], nice=False, zero=False
    )
    y_scale = alt.Scale(
        domain=[float(cells["b0"].min()), float(cells["b1"].max())], nice=False, zero=False
    )
    x, y = alt.X("a:Q", title=x_name, scale=x_scale), alt.Y("b:Q", title=y_name, scale=y_scale)
    layers = [
        _bands(
            cells,
            alt.X("a0:Q", title=x_name, scale=x_scale),
            alt.Y("b0:Q", title=y_name, scale=y_scale),
        ),
        *_paths(path_frame(result, k, s.i, s.j), x, y, dots=k <= MAX_DOTS),
        *_markers(marker_frame(result, k, s.i, s.j), x, y),
    ]
    if best is not None:
        layers.append(_least_squares(best[s.i], best[s.j], x, y))
    title = f"Loss over {x_name} and {y_name}, after {k:,} of {result.steps:,} steps"
    return (
        alt.layer(*layers).resolve_scale(color="independent").properties(height=HEIGHT, title=title)
    )


def _bands(cells: pd.DataFrame, x: alt.X, y: alt.Y) -> alt.Chart:
    levels, ramp = band_edges(cells["loss"])
    return (
        alt.Chart(cells)
        .mark_rect(clip=True)
        .encode(
            x=x,
            x2="a1",
            y=y,
            y2="b1",
            color=alt.Color(
                "loss:Q",
                title="loss (band edges; the lowest band is everything below its edge)",
                scale=alt.Scale(type="threshold", domain=levels, range=ramp),
                legend=alt.Legend(titleLimit=360),
            ),
            tooltip=[alt.Tooltip("loss:Q", format=".4g")],
        )
    )


def _loop_scale() -> alt.Scale:
    return alt.Scale(
        domain=[LABELS["manual"], LABELS["torch"]], range=[COLORS["manual"], COLORS["torch"]]
    )


def _quiet() -> alt.Color:
    """The loops' colours without a legend: one legend for the loops is enough."""
    return alt.Color("loop:N", scale=_loop_scale(), legend=None)


def _paths(path: pd.DataFrame, x: alt.X, y: alt.Y, dots: bool) -> list[alt.Chart]:
    """The hand loop's path thick and solid (with a dot per step, given dots), torch's thin and
    dashed on top."""
    loop_color = alt.Color(
        "loop:N", title=None, scale=_loop_scale(), legend=alt.Legend(orient="top")
    )
    manual = path[path["loop"] == LABELS["manual"]]
    layers = [
        alt.Chart(manual)
        .mark_line(strokeWidth=3, clip=True)
        .encode(x=x, y=y, order="step:Q", color=loop_color)
    ]
    if dots:
        tooltip = ["step:Q", alt.Tooltip("a:Q", format=".4g"), alt.Tooltip("b:Q", format=".4g")]
        layers.append(
            alt.Chart(manual)
            .mark_circle(size=30, opacity=1, clip=True)
            .encode(x=x, y=y, color=_quiet(), tooltip=tooltip)
        )
    layers.append(
        alt.Chart(path[path["loop"] == LABELS["torch"]])
        .mark_line(strokeWidth=1.5, strokeDash=[5, 3], clip=True)
        .encode(x=x, y=y, order="step:Q", color=_quiet())
    )
    return layers


def _markers(now: pd.DataFrame, x: alt.X, y: alt.Y) -> list[alt.Chart]:
    """A ring where the hand loop is at the step shown, a cross where torch is."""
    ring = (
        alt.Chart(now[now["loop"] == LABELS["manual"]])
        .mark_point(shape="circle", size=320, filled=False, strokeWidth=3, clip=True)
        .encode(x=x, y=y, color=_quiet(), tooltip=["loop:N", "step:Q"])
    )
    cross = (
        alt.Chart(now[now["loop"] == LABELS["torch"]])
        .mark_point(shape="cross", size=110, filled=True, clip=True)
        .encode(x=x, y=y, color=_quiet(), tooltip=["loop:N", "step:Q"])
    )
    return [ring, cross]


def _least_squares(a: float, b: float, x: alt.X, y: alt.Y) -> alt.Chart:
    star = pd.DataFrame({"a": [a], "b": [b], "what": ["least-squares solution"]})
    tooltip = ["what:N", alt.Tooltip("a:Q", format=".4g"), alt.Tooltip("b:Q", format=".4g")]
    return (
        alt.Chart(star)
        .mark_point(
            shape="diamond", size=420, filled=False, strokeWidth=3, color="black", clip=True
        )
        .encode(x=x, y=y, tooltip=tooltip)
    )
