"""Where a result came from: the git commit of the code that made it (model cards, reports).

A result made with uncommitted changes says so plainly: ``built from a dirty tree at <commit>``,
never the bare commit (whose code it was not). Paths in cards and reports go through
:func:`normface.utils.paths.portable`.
"""

from __future__ import annotations

import dataclasses
import subprocess

from normface.utils import paths

UNKNOWN = "unknown"
DIRTY = "built from a dirty tree at "


@dataclasses.dataclass(frozen=True)
class GitState:
    commit: str  # the HEAD commit, or ``unknown`` outside a git checkout
    dirty: bool  # tracked files differ from HEAD

    def __str__(self) -> str:
        return DIRTY + self.commit if self.dirty else self.commit

    def markdown(self) -> str:
        """For a card or report: the commit in backticks, after the plain words when dirty."""
        return f"{DIRTY}`{self.commit}`" if self.dirty else f"`{self.commit}`"


def git_state() -> GitState:
    """The repository's HEAD commit and whether tracked files have uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return GitState(head, bool(dirty))
    except (OSError, subprocess.SubprocessError):
        return GitState(UNKNOWN, False)


def git_commit() -> str:
    """The HEAD commit; ``built from a dirty tree at <commit>`` with uncommitted changes;
    ``unknown`` outside a git checkout."""
    return str(git_state())


def parse(text: str) -> GitState:
    """The inverse of ``str(GitState)``; also reads the older ``<commit>+dirty``."""
    text = text.strip().strip("`")
    if text.startswith(DIRTY):
        return GitState(text[len(DIRTY):].strip("`"), True)
    if text.endswith("+dirty"):
        return GitState(text[: -len("+dirty")], True)
    return GitState(text, False)
