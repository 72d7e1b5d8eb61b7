"""Once per server process, on the first visit: what every session imports, moved out of the
garbage collector's way.

Streamlit collects garbage fully after every script run (its runner.postScriptGC option), and a
full collection walks every object the process holds: with torch, pandas, Altair and its
Vega-Lite schema loaded that is about 400,000 objects and 0.2 CPU-s per run, more than the
default run itself. `gc.freeze()` moves the objects alive now (the imported modules, built once,
shared by every session and never garbage) to a generation the collector no longer walks; what a
session makes afterwards is still collected as before. bench/sessions.py measures the server's CPU
time per visit.
"""

from __future__ import annotations

import gc

import altair as alt
import pandas as pd
import torch  # noqa: F401  (imported before the freeze)

import lib  # noqa: F401


def _load_the_chart_schema() -> None:
    """Validate one tiny chart, so Altair's Vega-Lite schema (a big tree of dicts, loaded on the
    first validation) is loaded before the freeze rather than by the first visitor after it."""
    alt.Chart(pd.DataFrame({"x": [0.0]})).mark_point().encode(x="x").to_dict()


_load_the_chart_schema()
gc.freeze()
