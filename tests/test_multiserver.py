"""More than one app server: `make serve N=2` (deploy/serve.py) puts nginx in front of two
Streamlit servers with sticky sessions. Real browser sessions go through the proxy; each must stay
on one server for its whole life (every request and its websocket), the sessions must be spread
over both servers, each must show the right result, and everything started must stop.

The browser reaches the proxy as http://class.test:PORT (Chromium maps the name to 127.0.0.1), so
the page's origin is not a loopback name and Streamlit's websocket origin check is the one a
real deployment meets. Missing nginx skips these tests, unless REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import expect
from serving import LOAD, free_port, settle
from test_browser_csv import choose, open_data, upload
from test_deploy import assert_no_error, wait_for_first_run
from test_sessions import final_losses

import lib
from deploy import serve
from pages.parts.labels import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = 4
HOSTNAME = "class.test"  # mapped to 127.0.0.1 inside Chromium only
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome"
STREAM = "/_stcore/stream"  # Streamlit's websocket
# One line of deploy/nginx.conf.in's log_format "sticky".
LOG_LINE = re.compile(
    r'^(?P<msec>\S+) "(?P<agent>[^"]*)" "(?P<request>[^"]*)" (?P<status>\d+) '
    r'"(?P<upstream>[^"]*)" "(?P<cookie>[^"]*)" "(?P<served_by>[^"]*)"$'
)
# A CSV over nginx's default 1 MB body limit and under server.maxUploadSize; the app refuses it in
# words (too many rows), which shows the upload reached a server, past its XSRF check.
BIG_CSV = b"x,y\n" + b"0.12345678,0.87654321\n" * 150_000
TOO_MANY_ROWS = "more than 100,000 data rows"


@pytest.fixture(scope="module")
def nginx() -> str:
    found = serve.find_nginx()
    if found is None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(
                "nginx is missing and REQUIRE_BROWSER=1: install it with apt-get install nginx"
            )
        pytest.skip("nginx is missing (apt-get install -y nginx); set REQUIRE_BROWSER=1 to fail")
    return found


def read_log(text: str) -> list[dict[str, str]]:
    """The access log's lines as fields; a line in another format is an error."""
    records = []
    for line in text.splitlines():
        match = LOG_LINE.match(line)
        assert match, f"not a line of the sticky log format: {line!r}"
        records.append(match.groupdict())
    return records


def stickiness_problems(records: list[dict[str, str]], agents: list[str]) -> list[str]:
    """What breaks sticky sessions in the log, per browser session (one user agent each): a
    session served by more than one server, a request that failed over, a cookie that did not
    name the server that answered, a session without its websocket, or all sessions on one
    server."""
    problems, used = [], set()
    for agent in agents:
        own = [r for r in records if r["agent"] == agent]
        upstreams = {r["upstream"] for r in own}
        used |= upstreams
        if len(upstreams) != 1:
            problems.append(f"{agent}: served by {sorted(upstreams)}")
        if any("," in u or not u for u in upstreams):
            problems.append(f"{agent}: a request was not answered by its first server")
        later = [r for r in own if r["cookie"] not in ("", "-")]
        if len(later) != len(own) - 1 or any(r["cookie"] != r["served_by"] for r in later):
            problems.append(f"{agent}: the cookie did not always name the server that answered")
        if not any(r["request"].startswith(f"GET {STREAM} ") and r["status"] == "101" for r in own):
            problems.append(f"{agent}: no websocket ({STREAM}, 101) in the log")
    if len(used) < 2:
        problems.append(f"every session went to {sorted(used)}")
    return problems


def test_the_stickiness_check_sees_a_split_session():
    def line(agent, request, status, upstream, cookie, served_by):
        return f'1.0 "{agent}" "{request}" {status} "{upstream}" "{cookie}" "{served_by}"'

    a, b = "127.0.0.1:1001", "127.0.0.1:1002"
    good = [
        line("one", "GET / HTTP/1.1", 200, a, "-", "s0"),
        line("one", f"GET {STREAM} HTTP/1.1", 101, a, "s0", "s0"),
        line("two", "GET / HTTP/1.1", 200, b, "-", "s1"),
        line("two", f"GET {STREAM} HTTP/1.1", 101, b, "s1", "s1"),
    ]
    assert stickiness_problems(read_log("\n".join(good)), ["one", "two"]) == []
    # session one's websocket went to the other server, as without stickiness
    split = [*good[:1], line("one", f"GET {STREAM} HTTP/1.1", 101, b, "s0", "s1"), *good[2:]]
    assert stickiness_problems(read_log("\n".join(split)), ["one", "two"]) == [
        "one: served by ['127.0.0.1:1001', '127.0.0.1:1002']",
        "one: the cookie did not always name the server that answered",
    ]
    # both sessions on one server, and one never opened its websocket
    lopsided = [good[0], line("two", "GET / HTTP/1.1", 200, a, "-", "s0")]
    assert stickiness_problems(read_log("\n".join(lopsided)), ["one", "two"]) == [
        f"one: no websocket ({STREAM}, 101) in the log",
        f"two: no websocket ({STREAM}, 101) in the log",
        "every session went to ['127.0.0.1:1001']",
    ]
    failed_over = [line("one", "GET / HTTP/1.1", 200, f"{a}, {b}", "-", "s1"), *good[1:]]
    assert "one: a request was not answered by its first server" in stickiness_problems(
        read_log("\n".join(failed_over)), ["one", "two"]
    )


def test_the_written_config_is_valid_nginx(nginx, tmp_path):
    ports = [free_port(), free_port(), free_port()]
    conf = tmp_path / "nginx.conf"
    (tmp_path / "temp").mkdir()
    conf.write_text(serve.nginx_config(ports, free_port(), tmp_path, serve.upload_limit_mb()))
    check = [nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)]
    done = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    text = conf.read_text()
    assert "{{" not in text
    # three sticky groups and the round robin for new visitors; uploads as large as Streamlit's
    assert text.count("upstream st_") == 4
    assert f"client_max_body_size {serve.upload_limit_mb() + 1}m;" in text
    # the same check sees a broken config
    conf.write_text(text.replace("proxy_pass http://$st_group;", "proxy_pass;"))
    assert subprocess.run(check, capture_output=True, timeout=30).returncode != 0


def test_the_template_must_be_filled_in_full():
    with pytest.raises(serve.DeployError, match=r"uses \['port'\]"):
        serve.fill("listen {{port}}; {{dir}}", {"dir": "/tmp"})


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--servers", "0"], "the number of servers must be 1 to 16, not 0"),
        (["--servers", "17"], "the number of servers must be 1 to 16, not 17"),
        (["--port", "70000"], "the proxy's port must be 1 to 65535, not 70000"),
        (["--workdir", "/tmp/a b"], "the work directory's path cannot go into nginx's config"),
    ],
)
def test_bad_requests_are_refused_in_words(argv, words, capsys):
    assert serve.main(argv) == 1
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_missing_nginx_is_said_in_words(monkeypatch, capsys):
    monkeypatch.setattr(serve, "find_nginx", lambda: None)
    assert serve.main(["--servers", "1"]) == 1
    assert "nginx is not installed (Debian: apt-get install -y nginx)" in capsys.readouterr().err


def test_make_serve_passes_n():
    done = subprocess.run(
        ["make", "-n", "serve", "N=3"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "-m deploy.serve --servers 3" in done.stdout, done.stdout


# ---------------------------------------------------------------- the deployment, in a browser


class Started:
    """The processes one command started, by pid: its descendants each time note() looks (their
    command lines kept, to name them after they exit)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.seen: dict[int, tuple[psutil.Process, str]] = {}

    def note(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    self.seen.setdefault(child.pid, (child, " ".join(child.cmdline())))

    def commands(self) -> list[str]:
        return sorted(command for _, command in self.seen.values())

    def running(self) -> list[str]:
        """Those seen that are still alive (psutil checks the start time too: not a reused pid)."""
        alive = []
        for pid, (p, command) in self.seen.items():
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {command}")
        return alive

    def wait_until_gone(self, timeout: float = 30) -> list[str]:
        """Those still running after up to timeout s of waiting for them to stop."""
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.running()

    def note_until_exit(self, timeout: float = 120) -> None:
        """note() every 0.1 s until the command exits (killed after timeout)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.note()
            time.sleep(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def kill_all(self) -> None:
        """After a failure: kill the command and whatever it left running."""
        self.note()
        for p, _ in self.seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.is_running():
                    p.kill()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def serve_command(servers: int, port: int, workdir: Path) -> list[str]:
    """make serve's command, with a port and a work directory the test chose."""
    return [
        *(sys.executable, "-m", "deploy.serve", "--servers", str(servers)),
        *("--port", str(port), "--workdir", str(workdir)),
    ]


@contextlib.contextmanager
def started(workdir: Path, port: int, servers: int = 2) -> Iterator[tuple[Started, Path]]:
    """deploy.serve as make serve runs it; yields (its Started, its output file) once it prints
    the URL; afterwards SIGTERMs it if it still runs, and kills what it left if it failed to stop
    all of it."""
    out = workdir.parent / "serve.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            serve_command(servers, port, workdir), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT
        )
    seen = Started(proc)
    try:
        deadline = time.monotonic() + 120
        while f"http://127.0.0.1:{port}" not in out.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"deploy.serve did not start:\n{out.read_text()}")
            time.sleep(0.3)
        seen.note()
        yield seen, out
    finally:
        seen.note()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        seen.kill_all()


@pytest.mark.serial
def test_a_busy_proxy_port_is_said_in_words_and_the_server_stops(nginx, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = serve_command(1, port, tmp_path / "deploy")
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen = Started(proc)
        try:
            seen.note_until_exit()
        finally:
            seen.kill_all()
    err = proc.stderr.read().decode()
    assert proc.returncode == 1, err
    assert "serve: nginx exited: " in err and "Address already in use" in err, err
    assert "Traceback" not in err
    assert sum("streamlit run" in c for c in seen.commands()) == 1, seen.commands()
    assert seen.wait_until_gone() == []


@pytest.mark.serial
def test_servers_stop_when_serve_is_killed(nginx, tmp_path):
    """SIGKILL leaves serve.py no time to stop anything: its children stop by themselves
    (PR_SET_PDEATHSIG)."""
    with started(tmp_path / "deploy", free_port(), servers=1) as (seen, _):
        assert any("streamlit run" in c for c in seen.commands()), seen.commands()
        assert any(c.startswith("nginx: master") for c in seen.commands()), seen.commands()
        seen.proc.kill()
        seen.proc.wait()
        assert seen.wait_until_gone() == []


def fetch(url: str, cookie: str = "") -> tuple[int, str, str]:
    """(status, X-Upstream, the Set-Cookie of serve.COOKIE or "") of a GET through the proxy."""
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=30) as reply:
        reply.read()
        sets = [c for c in reply.headers.get_all("Set-Cookie", []) if c.startswith(serve.COOKIE)]
        return reply.status, reply.headers.get("X-Upstream", ""), "".join(sets)


@pytest.mark.serial
def test_a_dead_server_s_visitors_go_to_the_other(nginx, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with started(tmp_path / "deploy", port) as (seen, out):
        ports = dict(re.findall(r"^  (s\d) on 127\.0\.0\.1:(\d+)", out.read_text(), re.M))
        assert sorted(ports) == ["s0", "s1"], out.read_text()
        # a visitor of s0 stays there, and is not sent its cookie again
        assert fetch(f"{base}/", f"{serve.COOKIE}=s0") == (200, "s0", "")
        servers = {
            name: next(p for p, c in seen.seen.values() if f"--server.port {ports[name]}" in c)
            for name in ports
        }
        servers["s0"].kill()
        servers["s0"].wait(timeout=30)
        # s0's visitor reaches s1 (s0's group's backup) and its cookie now names s1
        status, upstream, cookie = fetch(f"{base}/", f"{serve.COOKIE}=s0")
        assert (status, upstream) == (200, "s1")
        assert cookie.startswith(f"{serve.COOKIE}=s1;"), cookie
        # new visitors too: round robin skips the dead server
        assert [fetch(f"{base}/_stcore/health")[:2] for _ in range(3)] == [(200, "s1")] * 3
        assert seen.proc.poll() is None, out.read_text()  # serve.py carries on with s1
        deadline = time.monotonic() + 30
        while "streamlit server s0 exited" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "its visitors go to the other servers, as new sessions" in out.read_text()
        # the last server gone: serve.py says so, stops nginx and exits
        servers["s1"].kill()
        assert seen.proc.wait(timeout=60) == 1, out.read_text()
        assert "serve: every streamlit server has exited" in out.read_text()
        assert seen.wait_until_gone() == []


def wait_for_websockets(log: Path, agents: list[str]) -> list[dict[str, str]]:
    """The access log once it holds every session's closed websocket (nginx logs a websocket when
    it closes), or after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        records = read_log(log.read_text()) if log.exists() else []
        closed = {r["agent"] for r in records if r["request"].startswith(f"GET {STREAM} ")}
        if set(agents) <= closed or time.monotonic() > deadline:
            return records
        time.sleep(0.3)


def test_sessions_stay_on_their_server_behind_nginx(
    nginx, tmp_path, browser_type, browser_type_launch_args
):
    # the Compare page's default run: its sidebar's defaults, Config's for the rest
    data = lib.datasets.linear(
        m=DEFAULTS["samples"],
        n=DEFAULTS["n_features"],
        noise=DEFAULTS["noise"],
        seed=DEFAULTS["seed"],
    )
    cfg = lib.Config(
        lr=DEFAULTS["lr"],
        batch_size=DEFAULTS["batch_size"],
        iterations=DEFAULTS["iterations"],
        seed=DEFAULTS["seed"],
    )
    result = lib.run(data, cfg)
    expected = f"{result.manual.loss[-1]:.6g}"  # the page's format for the final loss

    launch = dict(browser_type_launch_args)
    launch["args"] = [*launch.get("args", []), f"--host-resolver-rules=MAP {HOSTNAME} 127.0.0.1"]
    chromium = browser_type.launch(**launch)
    port, workdir = free_port(), tmp_path / "deploy"
    base = f"http://{HOSTNAME}:{port}/"
    try:
        with started(workdir, port) as (seen, out):
            names = seen.commands()
            assert sum("streamlit run" in n for n in names) == 2, names
            assert sum(n.startswith("nginx: master") for n in names) == 1, names

            agents = [f"{AGENT}/{chromium.version} twins-session-{i}" for i in range(SESSIONS)]
            contexts = [chromium.new_context(user_agent=agent) for agent in agents]
            headers: list[set[str]] = [set() for _ in contexts]
            pages = []
            for i, context in enumerate(contexts):
                context.on(
                    "response",
                    lambda r, i=i: (
                        r.url.startswith(base) and headers[i].add(r.headers.get("x-upstream", ""))
                    ),
                )
                page = context.new_page()
                page.goto(base, timeout=LOAD)
                pages.append(page)
            shown = []
            for page in pages:
                wait_for_first_run(page)
                settle(page)  # the script has finished: the summary table is drawn
                shown.append(final_losses(page))
                assert_no_error(page)
            # a download: Streamlit serves the file over HTTP from the session's own server
            button = pages[1].get_by_role("button", name="History (CSV)")
            button.evaluate("e => e.scrollIntoView({block: 'center'})")
            with pages[1].expect_download(timeout=LOAD) as caught:
                button.click()
            downloaded = Path(caught.value.path()).read_bytes()
            # a CSV past nginx's default body limit, through the proxy and Streamlit's XSRF check
            open_data(pages[0])
            choose(pages[0], "Data source", "Your own CSV file")
            upload(pages[0], "big.csv", BIG_CSV)
            expect(pages[0].get_by_text(TOO_MANY_ROWS).first).to_be_visible(timeout=LOAD)
            assert_no_error(pages[0])
            seen.note()
            for context in contexts:
                context.close()
            records = wait_for_websockets(workdir / "access.log", agents)

            seen.proc.send_signal(signal.SIGTERM)
            assert seen.proc.wait(timeout=60) == 0, out.read_text()
            assert "nginx and every server are down" in out.read_text()
    finally:
        chromium.close()

    assert stickiness_problems(records, agents) == []
    # every part of Streamlit a session uses answered through the proxy, from its own server
    requests = {agent: [r for r in records if r["agent"] == agent] for agent in agents}
    for agent, own in requests.items():
        failed = [f"{r['request']} {r['status']}" for r in own if int(r["status"]) >= 400]
        assert failed == [], (agent, failed)
        paths = {r["request"].split()[1] for r in own}
        assert {"/", "/_stcore/health", "/_stcore/host-config"} <= paths, (agent, paths)
        assert any(path.startswith("/static/") for path in paths), (agent, paths)
    assert any(r["request"].startswith("PUT /_stcore/upload_file/") for r in requests[agents[0]])
    assert any(r["request"].startswith("GET /media/") for r in requests[agents[1]])
    # what each browser saw agrees with the log: one server per session, named in X-Upstream
    for i, agent in enumerate(agents):
        served = {r["served_by"] for r in records if r["agent"] == agent}
        assert headers[i] == served and len(served) == 1, (agent, headers[i], served)
    assert all(row.get("manual (numpy)") == expected for row in shown), (shown, expected)
    assert all(row.get("torch") == expected for row in shown), (shown, expected)
    assert downloaded == lib.history_csv(result)
    # stopped by SIGTERM, nothing left: no waiting here, serve.py waits for all of it itself
    assert seen.running() == [], f"still running after deploy.serve stopped: {seen.running()}"
