"""Errors that reach a researcher: each names the field or file and what is wrong."""

from __future__ import annotations

import errno

from pydantic import BaseModel, ValidationError

MAX_MESSAGE = 500  # characters of one problem shown: a value quoted in a message never floods the log


class Problem(BaseModel):
    """One thing wrong with a design or its resources."""

    field: str
    message: str
    path: str | None = None

    def __str__(self) -> str:
        where = f" [{self.path}]" if self.path else ""
        message = self.message if len(self.message) <= MAX_MESSAGE else self.message[:MAX_MESSAGE] + " [...]"
        return f"{self.field}: {message}{where}"


class SweepflowError(Exception):
    """Base class; its str() is the message shown to the user, never a traceback."""


class DesignError(SweepflowError):
    """The design (or the resources it names) cannot be planned. Lists every problem found."""

    def __init__(self, problems: list[Problem], heading: str = "The experiment design has problems"):
        self.problems = problems
        self.heading = heading
        super().__init__(self.render())

    def render(self) -> str:
        """The heading with the problem count, then one indented line per problem."""
        lines = [f"{self.heading} ({len(self.problems)}):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


_OS_HINTS = {
    errno.ENOSPC: ("disk_full", "no space left on the device: free space there (or raise the quota), then run again"),
    errno.EDQUOT: ("disk_full", "disk quota exceeded: free space (or raise the quota), then run again"),
    errno.EACCES: ("permission", "permission denied: check the file's owner and mode, then run again"),
    errno.EPERM: ("permission", "operation not permitted (an immutable file? see lsattr): fix it, then run again"),
    errno.EROFS: ("permission", "the filesystem is read-only: point the run group at a writable folder"),
    errno.ENOENT: ("missing", "not found: it was moved or deleted; restore it or run the stage that makes it"),
}


class FileSystemError(SweepflowError):
    """A file operation failed; names the file, why, and what to do. `cause`: disk_full, permission, missing, other."""

    def __init__(self, path: str | None, cause: str, message: str):
        self.path, self.cause = path, cause
        super().__init__(f"{path}: {message}" if path else message)


def domain_error(error: BaseException) -> SweepflowError | None:
    """A SweepflowError saying what `error` means for the researcher; None for a programming error.

    OSError (disk full, permissions, a missing file) names the file and what to do; a pydantic
    ValidationError names the model and its first problems; a SweepflowError is itself.
    """
    if isinstance(error, SweepflowError):
        return error
    if isinstance(error, OSError):
        cause, hint = _OS_HINTS.get(error.errno or 0, ("other", error.strerror or str(error)))
        path = error.filename if isinstance(error.filename, str) else None
        return FileSystemError(path, cause, hint)
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in error.errors()[:3]
        )
        more = f" (and {error.error_count() - 3} more)" if error.error_count() > 3 else ""
        return SweepflowError(f"invalid {error.title}: {problems}{more}")
    return None
