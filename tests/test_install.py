"""The checkout installs: `pip install` puts lib and its data files in place, and nothing else of
the app; `import lib` then works from an empty folder outside the repository."""

import email
import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def checkout_copy(dest: Path) -> Path:
    """The work tree's files that git does not ignore (in a fresh clone: the clone), copied, so
    that the build writes nothing into the checkout."""
    try:
        listed = subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            check=True,
        ).stdout
        files = [f for f in listed.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):  # no git: the tree less the usual clutter
        files = [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not {".git", ".venv", "__pycache__"} & set(p.parts)
        ]
    for name in files:
        source = ROOT / name
        if source.is_file():  # a file deleted in the work tree but not yet in git is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def requirement_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def test_declared_dependencies_are_the_pins_of_requirements_txt():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(project["dependencies"]) == sorted(requirement_lines(ROOT / "requirements.txt"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """pip install of a copy of the checkout into a target folder (no dependencies: the venv has
    them; no build isolation: setuptools is a dev pin, so nothing is downloaded)."""
    work = tmp_path_factory.mktemp("install")
    source = checkout_copy(work / "checkout")
    target = work / "target"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    subprocess.run(
        [*pip, "--no-build-isolation", "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


@pytest.mark.timeout(360)
def test_the_distribution_holds_lib_and_its_data_files_and_nothing_else(installed):
    tops = {p.name for p in installed.iterdir() if not p.name.endswith(".dist-info")}
    assert tops == {"lib"}, f"installed besides lib: {sorted(tops - {'lib'})}"
    for name in ("planets.csv", "diabetes.csv", "breast_cancer.csv"):
        assert (installed / "lib" / "io" / "data" / name).is_file(), name
    shipped = {p.relative_to(ROOT / "lib") for p in (ROOT / "lib").rglob("*.py")}
    got = {p.relative_to(installed / "lib") for p in (installed / "lib").rglob("*.py")}
    assert shipped <= got, sorted(map(str, shipped - got))
    (meta,) = installed.glob("*.dist-info/METADATA")
    requires = email.message_from_string(meta.read_text()).get_all("Requires-Dist")
    assert sorted(requires) == sorted(requirement_lines(ROOT / "requirements.txt"))


@pytest.mark.timeout(360)
def test_installed_lib_runs_from_an_empty_folder_outside_the_repository(installed, tmp_path):
    program = textwrap.dedent(
        """
        import json, lib
        data = lib.datasets.PRESETS["kepler"].make()  # a shipped data file
        real = lib.datasets.PRESETS["diabetes"].make()
        result = lib.run(lib.datasets.linear(m=30, n=2), lib.Config(iterations=20))
        print(json.dumps({"file": lib.__file__, "m": [data.m, real.m], "done": result.done,
                          "diff": result.max_abs_diff, "notebook": callable(lib.to_notebook)}))
        """
    )
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(installed)
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).resolve().is_relative_to(installed.resolve())
    assert not Path(report["file"]).resolve().is_relative_to(ROOT)
    assert report["m"] == [9, 442] and report["done"] and report["diff"] <= 1e-10
    assert report["notebook"]
