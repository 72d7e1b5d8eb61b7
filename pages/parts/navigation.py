"""How the pages are reached: the check that a page runs inside app.py's navigation, and links
between pages."""

from __future__ import annotations

import urllib.parse

import streamlit as st

# The Pitfalls lab's tab on a learning rate above the stability limit, opened by its URL (the tab is
# bound to it).
PITFALLS_LINK = "/pitfalls?" + urllib.parse.urlencode({"pitfall": "4 · lr above the limit"})
# set once through_navigation has looked, this session
NAVIGATION_CHECKED = "controls_navigation_checked"


def through_navigation() -> None:
    """Make sure the page runs inside app.py's navigation, even when a link to it is a fresh
    server's first request.

    Until st.navigation has run once in the process, Streamlit takes an app with a pages/ folder for
    an old-style multipage app, and a first request for /step_through runs that file alone: no page
    titles, no wide layout, and every module of pages/ listed as a page. Switching that mode off and
    rerunning runs app.py, which shows the page asked for. (It reads Streamlit's PagesManager, which
    is internal: tests/test_browser.py opens a fresh server on a page link to notice if that ever
    changes.)
    """
    from streamlit.runtime.pages_manager import PagesManager

    # Once per session: a rerun later on (when a page runs on its own, as AppTest runs it) would
    # drop the click that started that run. It used to be once per server, by an st.cache_data that
    # was meant for the data.
    if st.session_state.get(NAVIGATION_CHECKED):
        return
    st.session_state[NAVIGATION_CHECKED] = True
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


# Streamlit's own breakpoint: at this width and below the sidebar lies over the page instead of
# beside it (its theme's "md" breakpoint, 768 px, as the sidebar's own layout code compares).
NARROW = 768
# Runs in the browser once, where it is drawn: no Python of the user's is ever in it.
_CLOSE_ON_A_NARROW_SCREEN = (
    "<script>(() => {"
    f"if (window.innerWidth > {NARROW}) return;"
    "const sidebar = document.querySelector('[data-testid=\"stSidebar\"]');"
    "if (!sidebar || sidebar.getAttribute('data-collapsed') !== 'false') return;"
    "const button = document.querySelector("
    "'[data-testid=\"stSidebarCollapseButton\"] button');"
    "if (button) button.click();"
    "})();</script>"
)


def close_sidebar_on_a_narrow_screen() -> None:
    """Close the sidebar after a click in it started work, where it lies over the page (a phone).

    On a narrow screen the sidebar covers the results the click is about to draw, and Streamlit has
    no call that closes it (st.set_page_config's initial_sidebar_state loses to the user's own
    toggle, which the browser remembers), so a line of script presses its « button, as the
    learner would. Wider screens keep it open: there it sits beside the page.
    """
    st.html(_CLOSE_ON_A_NARROW_SCREEN, unsafe_allow_javascript=True)
