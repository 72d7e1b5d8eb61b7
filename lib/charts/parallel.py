"""Altair pictures of a data-parallel step: the workers' batches, padding marked."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

# one colour per worker (up to 4), distinct from the loops' blue and orange
WORKER_COLORS = ("#1b9e77", "#7570b3", "#e7298a", "#66a61e")
MAX_CELLS = 64  # samples per worker drawn; a longer batch is cut, and the title says so


def shards_frame(rows: list[np.ndarray], padded: list[np.ndarray]) -> pd.DataFrame:
    """One row per sample of the step: worker, its place in the worker's batch, row, padding."""
    parts = []
    for rank, (taken, pad) in enumerate(zip(rows, padded, strict=True)):
        parts.append(
            pd.DataFrame(
                {
                    "worker": f"worker {rank}",
                    "place": np.arange(len(taken)),
                    "row": np.asarray(taken, dtype=int),
                    "padding": np.asarray(pad, dtype=bool),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame["label"] = frame["row"].astype(str) + np.where(frame["padding"], "*", "")  # * repeated
    return frame


def shards_chart(rows: list[np.ndarray], padded: list[np.ndarray], title: str) -> alt.LayerChart:
    """Each worker's batch as a row of cells coloured by worker, labelled by data row; padding
    (a sample the sampler repeats to even the shards) faded, outlined and starred."""
    frame = shards_frame(rows, padded)
    cut = frame["place"].max() >= MAX_CELLS
    frame = frame[frame["place"] < MAX_CELLS]
    if cut:
        title += f" (the first {MAX_CELLS} samples of each batch)"
    workers = [f"worker {r}" for r in range(len(rows))]
    base = alt.Chart(frame).encode(
        x=alt.X("place:O", title="sample in the worker's batch"),
        y=alt.Y("worker:N", sort=workers, title=None),
        tooltip=["worker", "place", "row", "padding"],
    )
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color(
            "worker:N", scale=alt.Scale(domain=workers, range=list(WORKER_COLORS[: len(rows)]))
        ),
        opacity=alt.condition("datum.padding", alt.value(0.35), alt.value(1.0)),
    )
    marks = base.mark_rect(
        fill=None, stroke="black", strokeWidth=2, strokeDash=[3, 2]
    ).transform_filter("datum.padding")
    text = base.mark_text(fontSize=10).encode(text="label:N")
    return alt.layer(cells, marks, text).properties(title=title, height=40 * len(rows))
