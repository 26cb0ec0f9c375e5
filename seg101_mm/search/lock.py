"""One search per work dir: an exclusive ``fcntl.flock`` on ``<work_dir>/search.lock``.

The lock belongs to the open file, so the kernel releases it when its process ends in any
way, kill -9 included: a stale lock file never blocks a resume. The holder writes its pid
into the file, so a refused search can name it. Taking the lock again in the same process
(``tools/search.py`` and then the search loop) is counted, not refused.
"""
import fcntl
import os
from pathlib import Path
from typing import Optional

from .errors import WorkDirBusy

LOCK_FILE = 'search.lock'

_HELD = {}  # lock file path -> [fd, count] of the locks this process holds


def _path(work_dir) -> Path:
    return Path(os.path.abspath(work_dir)) / LOCK_FILE


def busy(work_dir, holder) -> WorkDirBusy:
    """The error of a search refused because the process ``holder`` holds ``work_dir``."""
    return WorkDirBusy(f'{work_dir} is in use by another search (pid {holder}); wait for it to '
                       f'end, or stop it, before starting or resuming a search there')


def lock_holder(work_dir) -> Optional[str]:
    """The pid (text) of another process that holds the lock, else None; creates nothing."""
    path = _path(work_dir)
    if str(path) in _HELD:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors='replace').strip() or 'unknown'
    finally:
        os.close(fd)  # closing also drops the probe's own shared lock
    return None


def acquire(work_dir):
    """Take the lock of ``work_dir`` (created with its folder) or raise :class:`WorkDirBusy`."""
    path = _path(work_dir)
    held = _HELD.get(str(path))
    if held is not None:
        held[1] += 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        err = busy(work_dir, os.pread(fd, 32, 0).decode(errors='replace').strip() or 'unknown')
        os.close(fd)
        raise err from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'{os.getpid()}\n'.encode(), 0)
    _HELD[str(path)] = [fd, 1]


def release(work_dir):
    """Undo one :func:`acquire`; the last one closes the file, which drops the lock."""
    path = _path(work_dir)
    held = _HELD.get(str(path))
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[str(path)]
        os.ftruncate(held[0], 0)
        os.close(held[0])
