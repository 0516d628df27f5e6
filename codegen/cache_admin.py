"""Looking after the compile cache: `tdslc cache info`, `tdslc cache clear` and `tdslc cache prune`.

An entry is a group of files sharing the stem `NAME-KEY` (KEY: 32 hex digits): a module's
library `NAME-KEY.so`, its source `.c`, the lock `NAME-KEY.so.lock` a process holds while
building it, the temporaries `ENTRYNAME.PID.RANDOM.tmp` being written (codegen/cache.py), and
the other entries (features markers and their locks, OpenMP answers, warm entries, kept OpenCL
sources). A group is removed whole and only while this process holds its locks
(build.entry_lock_if_free), so a build running in another process is never broken: a group
being built is kept and reported. A temporary is a leftover of a dead builder when its writer
(the pid in its name) is no live process here, or when it is older than an hour whatever its
pid says (a cache folder shared with another machine); leftovers are removed by `clear` and
`prune`. The `opencl` folder is pyopencl's own cache: `clear` removes it, `prune` leaves it.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import stat
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tdsl.errors import TdslBuildError

from . import build, cache

LEFTOVER_AGE_S = 3600.0
DEFAULT_PRUNE_DAYS = 30.0
LIBRARY = ".so"   # a module's build holds the library's lock, and writes its source `.c` under it
_ENTRY = re.compile(r"(?P<stem>.+-[0-9a-f]{32})(?P<suffix>\.[^.]+)(?P<lock>\.lock)?")
_TEMPORARY = re.compile(r"(?P<entry>.+)\.(?P<pid>\d+)\.[^.]+\.tmp")


@dataclass(frozen=True)
class Member:
    """One file of a group: its size and modification time, and for a temporary its writer's pid."""
    path: Path
    size: int
    mtime: float
    kind: str              # "entry", "lock" or "temporary"
    suffix: str = ""       # the entry suffix it belongs to (".so" for X.so, X.so.lock, X.so.PID.R.tmp)
    pid: int | None = None


@dataclass
class Group:
    """The files of one cache entry (a stem), or a temporary no entry name can be read from."""
    stem: str
    members: list[Member] = field(default_factory=list)

    def is_entry(self) -> bool:
        """Whether it holds more than temporaries."""
        return any(m.kind != "temporary" for m in self.members)

    def last_used(self) -> float:
        """The newest modification time of its entry files (lock files change when locked)."""
        entries = [m.mtime for m in self.members if m.kind == "entry"] or [m.mtime for m in self.members]
        return max(entries)

    def lock_targets(self) -> list[Path]:
        """The entries whose locks guard this group: those with a lock file, and the library."""
        folder = self.members[0].path.parent
        suffixes = {m.suffix for m in self.members if m.kind == "lock"}
        if any(m.suffix in (LIBRARY, ".c") for m in self.members):
            suffixes.add(LIBRARY)
        return [folder / f"{self.stem}{suffix}" for suffix in sorted(suffixes)]


@dataclass
class Report:
    """What `clear` or `prune` did, and what the cache holds after it."""
    folder: Path
    removed_entries: int = 0
    removed_files: int = 0
    removed_bytes: int = 0
    removed_leftovers: int = 0
    in_use: int = 0                  # groups skipped: another process holds their lock
    live_temporaries: int = 0        # temporaries of live writers, kept
    remaining_entries: int = 0
    remaining_bytes: int = 0
    opencl_removed: bool = False
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"removed {_count(self.removed_entries, 'entry')} and {_count(self.removed_leftovers, 'leftover')} "
                f"of dead builders ({_count(self.removed_files, 'file')}, {_human(self.removed_bytes)})")
        if self.opencl_removed:
            text += " and the opencl folder"
        if self.in_use:
            text += f"; kept {_count(self.in_use, 'entry')} in use (another process holds their lock)"
        if self.live_temporaries:
            text += (f"; kept {_count(self.live_temporaries, 'temporary file')} that running processes "
                     f"are writing")
        return text + (f"; {_count(self.remaining_entries, 'entry')} ({_human(self.remaining_bytes)}) "
                       f"remain in {self.folder}")


def scan(folder: Path) -> list[Group]:
    """The groups of files in the cache folder, by stem; files that are no entry are left out."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    except OSError as err:
        raise TdslBuildError(f"cannot list the cache folder {folder}: {err.strerror or err}") from None
    groups: dict[str, Group] = {}
    for name in names:
        member = _member(folder / name)
        if member is not None:
            stem = _ENTRY.fullmatch(_entry_name(name))
            key = stem["stem"] if stem else name
            groups.setdefault(key, Group(key)).members.append(member)
    return list(groups.values())


def _entry_name(name: str) -> str:
    """The entry a file belongs to: `X.so` for X.so, X.so.lock and X.so.PID.RANDOM.tmp."""
    temporary = _TEMPORARY.fullmatch(name)
    if temporary:
        return temporary["entry"]
    return name.removesuffix(".tmp").removesuffix(".lock")


def _member(path: Path) -> Member | None:
    name = path.name
    if name.endswith(".tmp"):
        kind = "temporary"
        match = _TEMPORARY.fullmatch(name)
        pid = int(match["pid"]) if match else None
    else:
        entry = _ENTRY.fullmatch(name)
        if not entry or entry["suffix"] not in cache.ENTRY_SUFFIXES:
            return None
        kind, pid = ("lock" if entry["lock"] else "entry"), None
    try:
        info = path.lstat()
    except FileNotFoundError:   # removed since the listing
        return None
    except OSError as err:
        raise TdslBuildError(f"cannot read {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        return None
    entry = _ENTRY.fullmatch(_entry_name(name))
    return Member(path, info.st_size, info.st_mtime, kind, entry["suffix"] if entry else "", pid)


def leftover(member: Member, now: float) -> bool:
    """Whether a temporary was left by a builder that died: its writer is gone, or it is old."""
    return member.kind == "temporary" and (now - member.mtime > LEFTOVER_AGE_S or not _alive(member.pid))


def _alive(pid: int | None) -> bool:
    """Whether `pid` may be a live process here (unknown counts as alive: the age decides)."""
    if pid is None or os.name == "nt":   # on Windows os.kill(pid, 0) would stop the process
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:
        return False
    except OSError:   # EPERM: another user's live process
        return True
    return True


@contextmanager
def claimed(group: Group, whole: bool = True):
    """Yields True while this process holds every lock of `group` (nobody builds it), else False.

    To remove the whole group every lock is taken, made if missing (a build may start now); to
    remove only leftovers, the lock files there are (a build in progress holds one)."""
    targets = group.lock_targets()
    if not whole:
        targets = [t for t in targets if build.lock_file(t).exists()]
    with ExitStack() as held:
        for target in targets:
            if not held.enter_context(build.entry_lock_if_free(target)):
                yield False
                return
        yield True


def info() -> str:
    """A summary for `tdslc cache info`: where the cache is and what it holds."""
    folder = _folder()
    groups = scan(folder)
    files = [m for g in groups for m in g.members]
    now = time.time()
    left = [m for m in files if leftover(m, now)]
    in_use = sum(_in_use(g) for g in groups)
    opencl_files, opencl_bytes = _tree_size(folder / "opencl")
    size = sum(m.size for m in files)
    return (f"cache folder: {folder}\n"
            f"libraries: {sum(1 for m in files if m.kind == 'entry' and m.suffix == LIBRARY)}\n"
            f"files: {len(files)} ({_human(size)})\n"
            f"entries: {sum(g.is_entry() for g in groups)}, {in_use} in use (another process holds their lock)\n"
            f"leftovers of dead builders: {len(left)} ({_human(sum(m.size for m in left))})\n"
            f"opencl folder: {opencl_files} files ({_human(opencl_bytes)})\n"
            f"total size: {_human(size + opencl_bytes)}")


def _in_use(group: Group) -> bool:
    """Whether another process holds one of the group's lock files (none is made to ask)."""
    with claimed(group, whole=False) as free:
        return not free


def empty() -> Report:
    """Remove every entry no process is building, the leftovers and the opencl folder."""
    folder = _folder()
    report = _sweep(folder, lambda group: True)
    opencl = folder / "opencl"
    existed = opencl.exists()
    shutil.rmtree(opencl, ignore_errors=True)   # pyopencl builds again what it misses
    report.opencl_removed = existed and not opencl.exists()
    return _checked(report)


def clear() -> int:
    """Remove every entry no process is building (see `empty`); the number of files removed."""
    return empty().removed_files


def prune(older_than_days: float = DEFAULT_PRUNE_DAYS, max_size: int | None = None) -> Report:
    """Remove the entries not used for `older_than_days`, then the least recently used ones
    until the cache holds at most `max_size` bytes, and the leftovers; entries being built and
    live temporaries stay. Used: the newest modification time of an entry's files."""
    if not older_than_days >= 0:
        raise TdslBuildError(f"the age limit must be a number of days >= 0, not {older_than_days}")
    if max_size is not None and max_size < 0:
        raise TdslBuildError(f"the size limit must be a number of bytes >= 0, not {max_size}")
    cutoff = time.time() - older_than_days * 86400.0
    return _checked(_sweep(_folder(), lambda group: group.last_used() < cutoff, max_size))


def _sweep(folder: Path, old, budget: int | None = None) -> Report:
    """Remove every leftover, the groups `old(group)` picks, and the least recently used ones
    while the cache holds more than `budget` bytes: each group whole, under its locks."""
    report = Report(folder)
    now = time.time()
    groups = sorted(scan(folder), key=Group.last_used)
    total = sum(m.size for g in groups for m in g.members if not leftover(m, now))
    for group in groups:
        whole = old(group) or (budget is not None and total > budget)
        doomed = [m for m in group.members if (whole and m.kind != "temporary") or leftover(m, now)]
        gone, busy = [], False
        if doomed:
            with claimed(group, whole) as free:
                busy = not free
                if free:
                    gone = _remove(group, doomed, whole, report)
        total -= sum(m.size for m in gone if not leftover(m, now))
        kept = [m for m in group.members if m not in gone]
        report.in_use += busy and whole
        report.removed_entries += whole and not busy and group.is_entry() and not _entries(kept)
        report.live_temporaries += 0 if busy else len(kept) - len(_entries(kept))
        report.remaining_entries += bool(_entries(kept))
        report.remaining_bytes += sum(m.size for m in kept)
    return report


def _entries(members: list[Member]) -> list[Member]:
    return [m for m in members if m.kind != "temporary"]


def _remove(group: Group, doomed: list[Member], whole: bool, report: Report) -> list[Member]:
    """Remove `doomed` (the group's lock files last); the members that are gone (removed here,
    or by another process meanwhile)."""
    gone = []
    for member in sorted(doomed, key=lambda m: m.kind == "lock"):
        removed = _unlink(member.path, report)
        if removed is not None:
            gone.append(member)
        if removed:
            report.removed_files += 1
            report.removed_bytes += member.size
            report.removed_leftovers += member.kind == "temporary"
    if whole:   # the lock files this process made to claim the group
        for target in group.lock_targets():
            _unlink(build.lock_file(target), report)
    return gone


def _unlink(path: Path, report: Report) -> bool | None:
    """Remove a file: True; False when it was gone already (another clear); None when it cannot
    be removed (the reason goes to the report)."""
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    except OSError as err:
        report.failures.append(f"{path}: {err.strerror or err}")
        return None


def _checked(report: Report) -> Report:
    if report.failures:
        more = f" (and {len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
        raise TdslBuildError(f"{report.summary()}; but could not remove {report.failures[0]}{more}; "
                             f"check the permissions of the cache folder {report.folder}")
    return report


def _folder() -> Path:
    """The configured cache folder, as it is: upkeep never creates it, and never works on the
    temporary folder a process falls back to when the configured one cannot be written."""
    return cache.configured_dir()


def _tree_size(folder: Path) -> tuple[int, int]:
    files = size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                pass
    return files, size


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from `500M`, `2G`, `100K`, `1.5T` (powers of 1024; a trailing B or iB allowed) or `12345`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a size: a number of bytes, or one followed by K, M, G or T")
    return int(float(match[1]) * _UNITS[match[2]])


def parse_days(text: str) -> float:
    """A number of days >= 0 (`inf`: no age limit)."""
    try:
        days = float(text)
    except ValueError:
        days = math.nan
    if not days >= 0:
        raise ValueError(f"{text!r} is not a number of days >= 0")
    return days


def _count(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"
