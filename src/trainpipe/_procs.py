"""Whether a process on this host is still running (for leftovers of killed runs and dead tuning workers)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True for this process and for any pid that exists (also one we may not signal)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
