"""Finished runs shared by every session of this server, with their charts' payloads.

A teacher sends one link to a class: forty sessions ask for the same Config on the same data, and
the same Config on the same data gives the same numbers, so the run is computed once, by the first
session that asks, and the others are handed that Result. What is shared is read-only: the arrays
of a Result are made unwritable before it is stored, and a chart's payload is kept as a JSON string
and Arrow bytes, which no session can change. A session's own state (its settings, its last run)
stays in its st.session_state.

Only runs whose numbers follow from (data, Config) alone are kept: a run that took every step or
diverged. A run cut short by Stop or by the time limit ended where a clock or a click said, so it
is not handed to anyone else. A session that asks for a run another session is computing waits for
it (up to the time limit) instead of computing it a second time; if that run ends without a
result to share, the waiting session computes its own.
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import streamlit as st

import lib
from pages.parts.cached import fingerprint

MAX_BYTES = 96 * 2**20  # the runs and charts kept, over every session; the least recently used go
# a run this big is not kept at all: it would push out many classes' runs
MAX_ENTRY_BYTES = 32 * 2**20


def run_key(data: lib.Dataset, cfg: lib.Config) -> tuple:
    """What decides a run's numbers: the data's values and the Config (repr: every field, the
    scheduler's keywords included)."""
    return fingerprint(data), repr(cfg)


def shareable(result: lib.Result) -> bool:
    """True when the Result follows from its data and Config alone (it ran to its end or
    diverged), not from when a clock or a click stopped it."""
    return result.stopped in (None, "diverged")


def _arrays(result: lib.Result) -> list[np.ndarray]:
    found = []
    for value in (result.step_diff, result.recorded, result.val_steps, result.val_rows):
        if isinstance(value, np.ndarray):
            found.append(value)
    for history in (result.manual, result.torch):
        found += [
            v
            for v in (
                history.loss,
                history.weights,
                history.grad_norm,
                history.lr,
                history.clipped,
                history.val_loss,
                history.param_norms,  # computed now, so no session writes it later
            )
            if isinstance(v, np.ndarray)
        ]
    return found


def freeze(result: lib.Result) -> int:
    """Make every array of the Result read-only; return their size in bytes."""
    total = 0
    for array in _arrays(result):
        array.flags.writeable = False
        total += array.nbytes
    return total


@dataclass(frozen=True)
class ChartPayload:
    """One chart as Streamlit sends it: its Vega-Lite spec (JSON) and its datasets (Arrow)."""

    spec: str
    datasets: tuple[tuple[str, bytes], ...]

    @property
    def nbytes(self) -> int:
        return len(self.spec) + sum(len(data) for _, data in self.datasets)

    def spec_dict(self) -> dict:
        """A fresh spec for st.vega_lite_chart (which takes the datasets out of the dict it is
        given)."""
        spec = json.loads(self.spec)
        if self.datasets:
            spec["datasets"] = dict(self.datasets)
        return spec


def chart_payload(chart) -> ChartPayload | None:
    """The payload st.altair_chart would build for this chart (Streamlit's own conversion, with
    Altair's validation), or None where this Streamlit has no such conversion."""
    try:
        from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec
    except ImportError:
        return None
    spec = _convert_altair_to_vega_lite_spec(chart)
    datasets = spec.pop("datasets", {})
    if not all(isinstance(data, bytes) for data in datasets.values()):
        return None
    return ChartPayload(json.dumps(spec), tuple(datasets.items()))


@dataclass
class _Entry:
    result: lib.Result
    nbytes: int
    charts: dict = field(default_factory=dict)  # options -> {chart name: ChartPayload}


class SharedRuns:
    """A bounded, thread-safe store of finished runs and their chart payloads, by run_key."""

    def __init__(self, max_bytes: int = MAX_BYTES, max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        self.max_bytes, self.max_entry_bytes = max_bytes, max_entry_bytes
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[tuple, _Entry] = collections.OrderedDict()
        self._running: dict[tuple, threading.Event] = {}
        self.nbytes = 0
        self.stored = 0  # runs stored since the server started

    def get(self, key: tuple) -> lib.Result | None:
        """The stored Result for key, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry.result

    def claim(self, key: tuple) -> threading.Event | None:
        """None: the caller computes this run (and must call finish). An Event: another session
        is computing it; it is set when that run ends."""
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running
            self._running[key] = threading.Event()
            return None

    def finish(self, key: tuple, result: lib.Result | None) -> None:
        """The run claimed for key has ended: keep its Result if it can be shared, and wake those
        waiting for it. Called however the run ended (result None: it did not end normally)."""
        with self._lock:
            if result is not None and shareable(result):
                self._store(key, result)
            event = self._running.pop(key, None)
        if event is not None:
            event.set()

    def _store(self, key: tuple, result: lib.Result) -> None:
        size = freeze(result)
        if size > self.max_entry_bytes or key in self._entries:
            return
        self._entries[key] = _Entry(result, size)
        self.nbytes += size
        self.stored += 1
        self._evict()

    def _evict(self) -> None:
        while self.nbytes > self.max_bytes and self._entries:
            _, entry = self._entries.popitem(last=False)
            self.nbytes -= entry.nbytes

    def charts(
        self, key: tuple, result: lib.Result, options: tuple, build: Callable[[], dict]
    ) -> Mapping[str, ChartPayload] | None:
        """The payloads of the charts build() makes for the stored run of key, by name, built and
        converted once per options; None if this very result is not the one stored (a session's
        own stopped run, say) or a chart cannot be turned into a payload."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.result is not result:
                return None
            payloads = entry.charts.get(options)
        if payloads is not None:
            return payloads
        # Outside the lock: building and converting takes a fraction of a second.
        converted = {name: chart_payload(chart) for name, chart in build().items()}
        if any(payload is None for payload in converted.values()):
            return None
        payloads = MappingProxyType(converted)
        size = sum(payload.nbytes for payload in converted.values())
        with self._lock:
            if self._entries.get(key) is entry and options not in entry.charts:
                entry.charts[options] = payloads
                entry.nbytes += size
                self.nbytes += size
                self._evict()
        return payloads


@st.cache_resource(show_spinner=False)
def shared_runs() -> SharedRuns:
    """This server's one SharedRuns (Streamlit's resource cache: one object for every session)."""
    return SharedRuns()
