"""Switch pages in an AppTest the way the browser does, so a page's first run is the one a
learner gets.

A click in the sidebar navigation sends a rerun for the new page that carries no widget states: the
old page's widgets are gone, and Streamlit keeps their values under their keys
(persist_state="session") for the new page's widgets, whose ids differ (a widget id includes its
page). tests/test_browser_pages.py checks that in chromium. `at.switch_page(path).run()` sends the
old page's widget states instead, so the old ids are still live and the new page's first run gets
the controls' defaults while the sidebar shows the learner's values; one more run settles it. That
is AppTest's behaviour, not the app's: in the browser the first run already has them.
"""

from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.testing.v1 import AppTest


def switch_page(at: AppTest, path: str) -> AppTest:
    """at.switch_page(path), then the run the browser's page change makes: one without widget
    states."""
    at.switch_page(path)
    # AppTest.run() always sends the current tree's widget states; its _run takes the ones to send.
    return at._run(WidgetStates())
