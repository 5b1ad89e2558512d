"""Whether a file or folder could have been planted or changed by someone else, judged as ssh judges its
own files: owned by another user than this one (root excepted), or writable by group or others. The
journal's files (``_journal/file.py``) and the monitor's endpoint file and socket folder
(``_monitor/endpoint.py``) are refused on these grounds, each with a message of its own.
"""
from __future__ import annotations

import os
import stat


def who(uid: int) -> str:
    """``name (uid N)``, or ``uid N`` when the name is unknown."""
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def foreign(info: os.stat_result) -> bool:
    """Owned neither by this user nor by root."""
    return info.st_uid not in (os.getuid(), 0)


def writable_by_others(info: os.stat_result, *, folder: bool = False) -> bool:
    """Writable by group or others; a sticky folder (as ``/tmp``) does not count, since nobody may
    replace another user's files in it."""
    return bool(info.st_mode & 0o022) and not (folder and info.st_mode & stat.S_ISVTX)


def mode(info: os.stat_result) -> str:
    """The permission bits in octal, as ``chmod`` takes them (``644``)."""
    return f"{stat.S_IMODE(info.st_mode):o}"
