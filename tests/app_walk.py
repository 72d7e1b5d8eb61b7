"""Walk every control a page draws to both ends of its range, through AppTest: the machinery of
test_app_walk.py.

Nothing here names a control. A walk opens the page, lists every widget AppTest finds on it, and
makes cases from what each widget says about itself: a number's min and max, a slider's ends, every
option of a select, the other state of a switch, a click of a button. A case that makes new widgets
appear (an optimizer's settings, the mlp's hidden layer, a switch's slider) opens a new state whose
new widgets are walked in turn. Every run is checked: no exception, no Python error text, the page's
title still drawn.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamlit.proto.NumberInput_pb2 import NumberInput as NumberInputProto
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import (
    Button,
    Checkbox,
    Multiselect,
    NumberInput,
    Radio,
    Selectbox,
    SelectSlider,
    Slider,
    TextArea,
    TextInput,
    Toggle,
    Widget,
)

# client.showErrorDetails while walking: the app's config redacts the message and the stack
SHOW_ERRORS = "full"
APP = str(Path(__file__).resolve().parent.parent / "app.py")
# s per script run: a run at the iteration maximum ends at the Compare page's 60 s wall-time cap
TIMEOUT = 180
MAX_DEPTH = 3  # a state is reached by at most this many cases that each revealed new widgets
SLOW = 10.0  # s: cases slower than this are listed in the report

# Widget types the walk does not set, each with the reason; any other type it does not know fails
# the walk.
NOT_WALKED = {
    "download_button": "on_click='ignore': pressing it downloads a file and does not rerun the "
    "page",
    "file_uploader": "it takes a file, not a value in a range (tests/test_app_controls.py "
    "uploads good and bad CSVs)",
}
# a text box's "ends": empty, extreme, junk
TEXTS = ("", "nan, inf, -inf, 1e308", "not a number `*_[x](y)` <b>")
# What a Python error looks like when it leaks into the page's words.
PYTHON_ERROR = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+"
    r"|\b[A-Z]\w*(Error|Exception): |object has no attribute|is not subscriptable"
    r"|unsupported operand|could not be broadcast|invalid literal for|could not convert"
    r"|index \d+ is out of bounds|division by zero|math domain error|NoneType|not aligned"
)


@dataclass(frozen=True)
class Case:
    """One setting of one widget: its id (key, or type and label), and the value (an option's
    label for a select)."""

    widget: str
    value: Any

    def __str__(self) -> str:
        return "click " + self.widget if self.value == "click" else f"{self.widget}={self.value!r}"


@dataclass
class Page:
    """A page to walk, and how to drive it (nothing here lists its controls)."""

    name: str
    path: str  # as app.py's st.navigation names it
    # URL parameters of the first run: keep the runs short
    query: dict = field(default_factory=dict)
    # widget id -> value put back after a case changed it as a side effect
    short: dict = field(default_factory=dict)
    action: str | None = (
        None  # the button pressed after every case, when the page does its work on a click
    )
    # widget id -> value set on opening (e.g. a cheaper map)
    start: dict = field(default_factory=dict)
    switches_on: bool = (
        False  # start with every toggle on (the pitfall lab's tabs do their work only then)
    )
    allowed_errors: tuple[
        re.Pattern, ...
    ] = ()  # st.error texts that quote a Python error on purpose
    # Whether the controls a sidebar case reveals in the sidebar are walked here. The shared sidebar
    # is one piece of code (pages/parts/sidebar.py): its revealed controls (each optimizer's and
    # schedule's settings, the mlp's layer, ...) are walked on one page; the other pages that show
    # it walk each of its controls to both ends from the page as opened, and every control of their
    # own, however it was revealed.
    explore_sidebar: bool = True
    # Whether a page control whose options a case only relabels is walked again after every such
    # case, or once per number of options. For a chooser that lists the page's results by their
    # numbers (the learning-rate map's cells by their final loss): every sidebar case relabels it,
    # and choosing one of as many options runs the same page code with another run's numbers.
    relabel_once: bool = False


@dataclass
class Report:
    cases: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    expected: set[str] = field(default_factory=set)  # known-bug cases met (and not checked here)
    slow: list[tuple[float, str]] = field(default_factory=list)
    states: int = 0
    # every case of the page as opened, this share's and the other shares' (in their order)
    opened: list[Case] = field(default_factory=list)


# The choosers: the widgets whose range is a list of options (their types, as signatures name them)
OPTION_TYPES = (Selectbox, Radio, Multiselect, SelectSlider)
OPTION_KINDS = frozenset({"selectbox", "radio", "multiselect", "select_slider"})


def widget_id(w: Widget) -> str:
    """A widget's key (without the landscape page's per-run hash suffix), or its type and label."""
    if w.key:
        return re.sub(r"\d{8,}$", "", w.key)
    return f"{w.type}:{w.label}"


def widgets(at: AppTest) -> dict[str, Widget]:
    found: dict[str, Widget] = {}
    for root in (at.main, at.sidebar):
        for node in root:
            if isinstance(node, Widget):
                found.setdefault(widget_id(node), node)
    return found


def sidebar_ids(at: AppTest) -> set[str]:
    """The ids of the widgets drawn in the sidebar."""
    return {widget_id(node) for node in at.sidebar if isinstance(node, Widget)}


def signature(w: Widget) -> tuple:
    """What makes a widget a different control to walk: its id, type, whether it is enabled, and
    its range."""
    disabled = bool(getattr(w.proto, "disabled", False))
    extent: tuple = ()
    if isinstance(w, OPTION_TYPES):
        extent = tuple(w.options)
    elif isinstance(w, (NumberInput, Slider)):
        extent = (w.min, w.max)
    return (widget_id(w), w.type, disabled, extent)


def state_key(revealed: frozenset, page: Page) -> frozenset:
    """What makes a revealed state new to the walk: the revealed widgets' signatures, or, on a page
    with relabel_once, with a chooser's options counted instead of named."""
    if not page.relabel_once:
        return revealed
    return frozenset(
        (wid, kind, off, len(extent)) if kind in OPTION_KINDS else (wid, kind, off, extent)
        for wid, kind, off, extent in revealed
    )


def _labels(w: Widget) -> list[str]:
    return list(w.options)


def current(w: Widget) -> Any:
    """The widget's value as the walk sets it (labels for the selects)."""
    if isinstance(w, (Selectbox, Radio)):
        return None if w.index is None else w.options[w.index]
    if isinstance(w, SelectSlider):
        return w.format_func(w.value)
    if isinstance(w, Multiselect):
        return list(w.values)
    if isinstance(w, Button):
        return None
    return w.value


def _number(w: NumberInput, v: float) -> float | int:
    return int(v) if w.proto.data_type == NumberInputProto.INT else v


def case_values(w: Widget) -> list[Any]:
    """Both ends of the widget's range, every other option, or the other state."""
    if w.type in NOT_WALKED:
        return []
    if isinstance(w, NumberInput):
        if w.min is None or w.max is None:
            raise AssertionError(
                f"{widget_id(w)}: a number without a min or max has no ends to walk to"
            )
        return [_number(w, w.min), _number(w, w.max)]
    if isinstance(w, Slider):
        return [w.min, w.max]
    if isinstance(w, SelectSlider):
        return [w.options[0], w.options[-1]]
    if isinstance(w, (Selectbox, Radio)):
        return [label for label in _labels(w) if label != current(w)]
    if isinstance(w, Multiselect):
        return [[], _labels(w)]
    if isinstance(w, (Checkbox, Toggle)):
        return [not w.value]
    if isinstance(w, (TextInput, TextArea)):
        return [t for t in TEXTS if t != w.value]
    if isinstance(w, Button):
        return ["click"]
    raise AssertionError(
        f"the walk does not know how to set a {w.type} ({widget_id(w)}): teach tests/app_walk.py"
    )


def resolve(w: Widget, value: Any) -> Any:
    """A context's value: "min" and "max" are the widget's own ends, anything else is itself."""
    if value in ("min", "max") and isinstance(w, (NumberInput, Slider)):
        return case_values(w)[0 if value == "min" else -1]
    return value


def _stage_state(w: Widget, fill: Callable[[WidgetState], None]) -> None:
    """Send this widget state on the next run, as the browser would: the option's label, not the
    raw value."""
    ws = WidgetState()
    ws.id = w.id
    fill(ws)
    w.__class__ = type(
        f"Staged{type(w).__name__}", (type(w),), {"_widget_state": property(lambda self: ws)}
    )


def _disabled(w: Widget) -> bool:
    return bool(getattr(w.proto, "disabled", False))


def stage(w: Widget, value: Any) -> None:
    if isinstance(w, (Selectbox, Radio)):
        _stage_state(w, lambda ws: setattr(ws, "string_value", value))
    elif isinstance(w, (SelectSlider, Multiselect)):
        labels = [value] if isinstance(w, SelectSlider) else list(value)
        _stage_state(w, lambda ws: ws.string_array_value.data.extend(labels))
    elif isinstance(w, Button):
        w.click()
    else:
        w.set_value(value)


def snapshot(at: AppTest) -> dict[str, Any]:
    return {
        wid: current(w)
        for wid, w in widgets(at).items()
        if not isinstance(w, Button) and w.type not in NOT_WALKED
    }


def texts(at: AppTest) -> Iterator[tuple[str, str]]:
    for kind in ("error", "warning", "info", "success"):
        for el in getattr(at, kind):
            yield kind, str(el.value)


def problems(at: AppTest, page: Page, title: str | None) -> list[str]:
    """What is wrong with the page as drawn: an exception, a Python error in its words, a page
    that vanished."""
    found = [
        f"exception: {e.value}" + "".join(f"\n    {line}" for line in e.stack_trace[-8:])
        for e in at.exception
    ]
    for kind, text in texts(at):
        if PYTHON_ERROR.search(text) and not any(p.search(text) for p in page.allowed_errors):
            found.append(f"st.{kind} with a Python error: {text[:400]}")
    if title is not None and [t.value for t in at.title] != [title]:
        found.append(
            f"the page's title {title!r} is gone (titles now: {[t.value for t in at.title]})"
        )
    return found


class Walker:
    """Walks one page in one context; `report` collects every case and every failure, with how to
    reproduce it."""

    def __init__(
        self,
        page: Page,
        context: dict | None = None,
        known: dict[str, str] | None = None,
        shard: tuple[int, int] = (0, 1),
    ):
        """shard (k, n): walk the k-th of n shares of the page as opened, each a test item of its
        own that pytest-xdist can give another worker: the cases of the page as opened whose
        position in its list of cases (widget by widget, as drawn) is k modulo n, and every state
        those cases reveal. The n shares walk every case of the page as opened once; a state two
        shares both reveal is walked by each (the seen states are a share's own)."""
        self.page, self.context, self.known = page, dict(context or {}), dict(known or {})
        self.shard = shard
        self.report = Report()
        self.title: str | None = None

    # -------------------------------------------------------------- reaching a state

    def where(self, path: tuple[Case, ...], case: Case | str) -> str:
        steps = [f"Compare: {k}={v!r} + Run" for k, v in self.context.items()] + [
            str(c) for c in path
        ]
        return f"{self.page.name} | {' → '.join(steps) or 'as opened'} | {case}"

    def check(self, at: AppTest, where: str, on_page: bool = True) -> bool:
        found = problems(at, self.page, self.title if on_page else None)
        self.report.failures += [f"{where}: {p}" for p in found]
        return not found

    def open(self, path: tuple[Case, ...] = ()) -> AppTest:
        """A fresh session on the page: its URL parameters, the context's Compare run first if
        any, then `path`."""
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.query_params.update(self.page.query)
        if self.context:
            at.run()
            self.check(at, self.where((), "first run of app.py"), on_page=False)
            self.set(at, self.context, on_page=False)
            at.button(key="run").click().run()
            self.check(at, self.where((), "the context's Compare run"), on_page=False)
            if self.page.path != "pages/compare.py":
                at.switch_page(self.page.path).run()
                # Under AppTest (streamlit 1.67) a page's first run after a switch from a run that
                # changed a sidebar control gets the controls' defaults, not the values they show;
                # one more run settles it.
                self.check(at, self.where((), "switching to the page"), on_page=False)
                at.run()
        else:
            at.switch_page(
                self.page.path
            ).run()  # the session's first page, as a link to it opens it
        if self.title is None:
            [self.title] = [t.value for t in at.title]
        self.check(at, self.where((), "opening the page"))
        if self.page.switches_on:
            for w in widgets(at).values():
                if isinstance(w, Toggle) and not w.value:
                    w.set_value(True)
            at.run()
            self.check(at, self.where((), "every toggle on"))
        # a page that stopped early (a model too big to map) has no map settings to set
        drawn = widgets(at)
        self.set(at, {key: value for key, value in self.page.start.items() if key in drawn})
        for i, c in enumerate(path):
            stage(widgets(at)[c.widget], c.value)
            at.run()
            self.shorten(at, c, self.where(path[:i], c))
            self.check(at, self.where(path[:i], c))
        self.report.states += 1
        return at

    def restore(self, at: AppTest, base: dict[str, Any], sigs: set) -> bool:
        """Put every control back to its value in `base`, in one run; whether the page is then as
        it was."""
        now = widgets(at)
        staged = False
        for wid, value in base.items():
            w = now.get(wid)
            if w is not None and not getattr(w.proto, "disabled", False) and current(w) != value:
                stage(w, value)
                staged = True
        if staged:
            at.run()
            self.check(at, self.where((), "putting the controls back"))
        return snapshot(at) == base and {signature(w) for w in widgets(at).values()} == sigs

    def set(self, at: AppTest, settings: dict, on_page: bool = True) -> None:
        """Set controls one by one, a run after each (a control can be enabled by the one before
        it)."""
        for key, value in settings.items():
            stage(widgets(at)[key], resolve(widgets(at)[key], value))
            at.run()
            self.check(at, self.where((), f"setting {key}={value!r}"), on_page=on_page)

    def shorten(self, at: AppTest, case: Case, where: str) -> None:
        """Put the run-length controls back to short values that a case (e.g. a preset) changed
        as a side effect."""
        found, staged = widgets(at), False
        for wid, value in self.page.short.items():
            w = found.get(wid)
            if w is not None and wid != case.widget and current(w) != value:
                w.set_value(value)
                staged = True
        if staged:
            at.run()
            self.check(at, where + " (then the short run length put back)")

    # -------------------------------------------------------------- one case

    def run_case(self, at: AppTest, path: tuple[Case, ...], case: Case) -> tuple[set, dict]:
        """Run the staged case, then the page's action; the widgets' signatures and values before
        the action."""
        where = self.where(path, case)
        self.report.cases.append(where)
        started = time.perf_counter()
        at.run()
        ok = self.check(at, where)
        self.shorten(at, case, where)
        drawn = {signature(w) for w in widgets(at).values()}, snapshot(at)
        if ok and self.page.action:
            button = widgets(at).get(self.page.action)
            if button is not None and not button.disabled:
                button.click()
                at.run()
                self.check(at, f"{where}, then click {self.page.action}")
        seconds = time.perf_counter() - started
        if seconds > SLOW:
            self.report.slow.append((seconds, where))
        return drawn

    # -------------------------------------------------------------- the walk

    def walk(self) -> Report:
        queue: list[tuple[tuple[Case, ...], set[str] | None]] = [((), None)]
        seen: set[frozenset] = set()
        while queue:
            path, only = queue.pop(0)
            self._walk_state(path, only, queue, seen)
        return self.report

    def _walk_state(self, path, only, queue, seen) -> None:
        at = self.open(path)
        base = widgets(at)
        base_sigs, base_snap = {signature(w) for w in base.values()}, snapshot(at)
        targets = [wid for wid in base if only is None or wid in only]
        restore: tuple[str, Any] | None = None
        position = -1  # of the case in the page as opened's list of cases, for the shards
        for wid in targets:
            w = base.get(wid)
            if w is None or getattr(w.proto, "disabled", False):
                continue
            values = case_values(w)
            for value in [
                v for i, v in enumerate(values) if v not in values[:i]
            ]:  # a range of one value: once
                position += 1
                case = Case(wid, value)
                if not path:
                    self.report.opened.append(case)
                    if position % self.shard[1] != self.shard[0]:
                        continue  # another share's case
                where = self.where(path, case)
                if where in self.known:
                    self.report.expected.add(where)
                    continue
                now = widgets(at)
                if (
                    restore is not None
                    and restore[0] != wid
                    and restore[0] in now
                    and not _disabled(now[restore[0]])
                ):
                    stage(now[restore[0]], restore[1])
                if wid not in now or _disabled(now[wid]):
                    # an earlier case of this state greyed it out (Start after a step): no user can
                    # set it
                    continue
                stage(now[wid], value)
                sigs, snap = self.run_case(at, path, case)
                new = sigs - base_sigs
                revealed = frozenset(s for s in new if not s[2] and s[1] not in NOT_WALKED)
                if not self.page.explore_sidebar:
                    in_sidebar = sidebar_ids(at)
                    revealed = frozenset(s for s in revealed if s[0] not in in_sidebar)
                key = state_key(revealed, self.page)
                if revealed and key not in seen and len(path) < MAX_DEPTH:
                    seen.add(key)
                    queue.append(((*path, case), {s[0] for s in revealed}))
                others_changed = any(snap.get(k) != v for k, v in base_snap.items() if k != wid)
                if new or sigs != base_sigs or others_changed:
                    # The case changed more than itself: put everything back, or start afresh if
                    # that fails.
                    if not self.restore(at, base_snap, base_sigs):
                        at = self.open(path)
                    restore = None
                else:
                    restore = (wid, base_snap.get(wid)) if wid in base_snap else None
