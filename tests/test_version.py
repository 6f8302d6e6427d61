"""``normface --version`` and ``normface`` alone (issue 27)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from normface import __version__, cli
from normface.utils import paths


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(paths.REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "normface.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_version_prints_normface_and_the_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"normface {__version__}\n"
    done = _run("--version")
    assert (done.returncode, done.stdout) == (0, f"normface {__version__}\n"), done.stderr


def test_version_is_the_package_version():
    setup = (paths.REPO_ROOT / "setup.cfg").read_text()
    assert f"\nversion = {__version__}\n" in setup


def test_no_command_exits_2_with_the_subcommand_list():
    for argv in ([], ["--debug"]):
        done = _run(*argv)
        assert done.returncode == 2, done
        for name in ("normalize", "adjust", "avatar", "serve", "warp-demo"):
            assert f"\n  {name} " in done.stderr, done.stderr
        assert "usage: normface" in done.stderr and "a COMMAND is required" in done.stderr
        assert done.stdout == ""
