"""N Streamlit app servers behind one nginx with sticky sessions, all on 127.0.0.1:

    make serve N=2                      (python -m deploy.serve --servers 2)

Each server is `streamlit run app.py` on its own free port, with the repository's
.streamlit/config.toml. nginx runs in the foreground from a config written from
deploy/nginx.conf.in into a work directory (its pid file, logs and temp paths too). A visitor
without a cookie is sent to the servers in turn; the response sets a cookie naming the server that
answered, and every later request of that browser (the websocket too) goes to that server, which
holds its Streamlit session. If a server exits, its visitors go to the others (as new sessions);
serve.py stops when nginx or the last server exits. Ctrl-C, SIGTERM or SIGHUP stops nginx, then
the servers.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).with_name("nginx.conf.in")
HOST = "127.0.0.1"  # the only address anything here binds to
COOKIE = "st_server"  # the cookie that names a visitor's server
MAX_SERVERS = 16
DEFAULT_PORT = 8080
STREAMLIT_UPLOAD_DEFAULT_MB = 200  # Streamlit's own default for server.maxUploadSize
STOP_WAIT = 15  # s a process gets to stop after SIGTERM before SIGKILL


class DeployError(Exception):
    """Something the deployment could not do, said in words (no traceback is shown for it)."""


@dataclass
class Server:
    name: str  # "s0", "s1", ...: the cookie's value for it
    port: int
    process: subprocess.Popen
    log: Path


@dataclass
class Deployment:
    url: str
    workdir: Path
    servers: list[Server]
    nginx: subprocess.Popen | None = None
    # every process started, with its children, as psutil saw them while running
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    def upstream(self, name: str) -> str:
        """The address nginx logs for the server called name."""
        return next(f"{HOST}:{s.port}" for s in self.servers if s.name == name)

    def processes(self) -> list[psutil.Process]:
        """The running processes this deployment started (nginx's workers and the servers'
        children included); they are also remembered, so stop() can check them by pid."""
        roots = [s.process for s in self.servers] + ([self.nginx] if self.nginx else [])
        found = []
        for popen in roots:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(popen.pid)
                found += [root, *root.children(recursive=True)]
        for proc in found:
            self.seen.setdefault(proc.pid, proc)
        return found

    def exited(self) -> str | None:
        """Which started process has exited by itself, if one has, in words."""
        for server in self.servers:
            if server.process.poll() is not None:
                return f"streamlit server {server.name} exited: {tail(server.log)}"
        if self.nginx is not None and self.nginx.poll() is not None:
            return f"nginx exited: {tail(self.error_log)}"
        return None


def tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return f"(no {path.name})"
    text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    return "\n".join(text) if text else f"({path.name} is empty)"


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def upload_limit_mb(config: Path = ROOT / ".streamlit" / "config.toml") -> int:
    """server.maxUploadSize of the repository's Streamlit config, in MB."""
    settings = tomllib.loads(config.read_text()) if config.exists() else {}
    return int(settings.get("server", {}).get("maxUploadSize", STREAMLIT_UPLOAD_DEFAULT_MB))


def fill(template: str, values: dict[str, object]) -> str:
    """Replace each {{name}} in template by values[name]; a name without a value is an error."""
    missing = sorted(set(re.findall(r"\{\{(\w+)\}\}", template)) - set(values))
    if missing:
        raise DeployError(f"{TEMPLATE.name} uses {missing}, which serve.py does not fill in")
    return re.sub(r"\{\{(\w+)\}\}", lambda m: str(values[m.group(1)]), template)


def nginx_config(ports: Sequence[int], port: int, workdir: Path, upload_mb: int) -> str:
    """The nginx config for servers on ports (named s0, s1, ...) behind a proxy on port."""
    names = [f"s{i}" for i in range(len(ports))]
    pool = "".join(f"        server {HOST}:{p};\n" for p in ports)
    upstreams = f"    upstream st_new {{\n{pool}    }}\n"
    for name, own in zip(names, ports, strict=True):
        backups = "".join(f"        server {HOST}:{p} backup;\n" for p in ports if p != own)
        upstreams += f"    upstream st_{name} {{\n        server {HOST}:{own};\n{backups}    }}\n"
    group_map = "\n".join(f"        {name} st_{name};" for name in names)
    served_map = "\n".join(
        f"        ~{re.escape(HOST)}:{p}$ {name};" for name, p in zip(names, ports, strict=True)
    )
    return fill(
        TEMPLATE.read_text(),
        {
            "count": len(ports),
            "dir": workdir,
            "cookie": COOKIE,
            "body_mb": upload_mb + 1,
            "upstreams": upstreams,
            "group_map": group_map,
            "served_map": served_map,
            "port": port,
        },
    )


def _die_with_parent() -> None:
    """In a child before exec: SIGTERM it when serve.py dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so no server outlives the deployment."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _start(command: Sequence[str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        # Own session: a Ctrl-C reaches serve.py alone, which stops nginx before the servers.
        return subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _healthy(url: str) -> bool:
    with (
        contextlib.suppress(OSError, ValueError),
        urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply,
    ):
        return reply.read().strip() == b"ok"
    return False


def _wait_healthy(deployment: Deployment, urls: Sequence[str], startup: float) -> None:
    deadline = time.monotonic() + startup
    waiting = list(urls)
    while waiting:
        waiting = [url for url in waiting if not _healthy(url)]
        problem = deployment.exited()
        if problem:
            raise DeployError(problem)
        if waiting and time.monotonic() > deadline:
            raise DeployError(f"no answer from {', '.join(waiting)} within {startup:g} s")
        if waiting:
            time.sleep(0.3)


def _stop(popen: subprocess.Popen) -> None:
    if popen.poll() is None:
        popen.terminate()
    try:
        popen.wait(timeout=STOP_WAIT)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def stop(deployment: Deployment) -> None:
    """Stop nginx (no new requests), then every server, then anything they left running."""
    deployment.processes()
    if deployment.nginx is not None:
        _stop(deployment.nginx)
    for server in deployment.servers:
        _stop(server.process)
    left = [p for p in deployment.seen.values() if p.is_running()]
    for proc in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(left, timeout=STOP_WAIT)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def check_request(servers: int, port: int, workdir: Path | None) -> str:
    """The path to nginx, once the request is one this script can serve; else DeployError."""
    if not 1 <= servers <= MAX_SERVERS:
        raise DeployError(f"the number of servers must be 1 to {MAX_SERVERS}, not {servers}")
    if not 1 <= port <= 65535:
        raise DeployError(f"the proxy's port must be 1 to 65535, not {port}")
    if workdir is not None and re.search(r"[\s;'\"{}$#]", str(workdir.resolve())):
        raise DeployError(f"the work directory's path cannot go into nginx's config: {workdir}")
    nginx = find_nginx()
    if nginx is None:
        raise DeployError("nginx is not installed (Debian: apt-get install -y nginx)")
    return nginx


@contextlib.contextmanager
def deployment(
    servers: int = 2, port: int = DEFAULT_PORT, workdir: Path | None = None, startup: float = 120
) -> Iterator[Deployment]:
    """Start `servers` Streamlit servers and nginx in front of them on 127.0.0.1:port; yield the
    running Deployment; stop all of it on leaving. workdir (kept afterwards) holds the config,
    logs and temp files; without one a temporary directory is used and removed."""
    nginx = check_request(servers, port, workdir)
    own_dir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="twins-serve-")) if own_dir else workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "temp").mkdir(exist_ok=True)
    running = Deployment(url=f"http://{HOST}:{port}", workdir=workdir, servers=[])
    try:
        for i in range(servers):
            name, server_port = f"s{i}", free_port()
            command = [sys.executable, "-m", "streamlit", "run", "app.py"]
            command += ["--server.headless", "true", "--server.address", HOST]
            command += ["--server.port", str(server_port)]
            log = workdir / f"streamlit-{name}.log"
            running.servers.append(Server(name, server_port, _start(command, log), log))
        _wait_healthy(running, [f"http://{HOST}:{s.port}" for s in running.servers], startup)
        config = workdir / "nginx.conf"
        ports = [s.port for s in running.servers]
        config.write_text(nginx_config(ports, port, workdir, upload_limit_mb()))
        command = [nginx, "-p", str(workdir), "-e", str(running.error_log), "-c", str(config)]
        running.nginx = _start(command, workdir / "nginx.out")
        _wait_healthy(running, [running.url], 30)
        running.processes()
        yield running
    finally:
        stop(running)
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


def watch(running: Deployment) -> None:
    """Wait for a signal. A server that exits is reported and its visitors go to the others (its
    group's backups); DeployError when nginx exits or no server is left."""
    down: set[str] = set()
    while True:
        if running.nginx is not None and running.nginx.poll() is not None:
            raise DeployError(f"nginx exited: {tail(running.error_log)}")
        for server in running.servers:
            if server.name not in down and server.process.poll() is not None:
                down.add(server.name)
                print(
                    f"streamlit server {server.name} exited: {tail(server.log, 5)}\n"
                    "its visitors go to the other servers, as new sessions",
                    file=sys.stderr,
                    flush=True,
                )
        if len(down) == len(running.servers):
            raise DeployError("every streamlit server has exited")
        time.sleep(1)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(Exception):
    """A signal asked serve.py to stop."""


def _on_signal(signum, frame) -> None:
    for other in STOP_SIGNALS:  # a second Ctrl-C must not cut the stopping short
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", "-n", type=int, default=2, help="app servers (default 2)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the proxy's port")
    parser.add_argument("--workdir", type=Path, help="keep config and logs here (default: temp)")
    args = parser.parse_args(argv)
    before = {signum: signal.signal(signum, _on_signal) for signum in STOP_SIGNALS}
    try:
        with deployment(args.servers, args.port, args.workdir) as running:
            count = len(running.servers)
            print(f"{count} Streamlit server{'s' * (count != 1)} behind nginx: {running.url}")
            for server in running.servers:
                print(f"  {server.name} on {HOST}:{server.port} (log: {server.log})")
            kept = "" if args.workdir else " (removed at exit; --workdir DIR keeps them)"
            print(f"config and logs in {running.workdir}{kept}", flush=True)
            print("Ctrl-C stops everything", flush=True)
            watch(running)
    except Stopped as why:
        print(f"stopped ({why}): nginx and every server are down", flush=True)
        return 0
    except DeployError as error:
        print(f"serve: {error}", file=sys.stderr, flush=True)
        return 1
    except OSError as error:  # e.g. a work directory that cannot be written
        print(f"serve: {error.strerror or error}: {error.filename or ''}", file=sys.stderr)
        return 1
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
