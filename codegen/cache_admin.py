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
`prune`. The `opencl` folder holds pyopencl's own cache and tdsl's OpenCL program binaries
(`program-KEY.bin`): `clear` removes it, `prune` leaves it.

A damaged entry (a folder, a link, a FIFO or a device where an entry's file belongs) is an entry
like any other: `info` counts it, `clear` removes it and `prune` goes by its own modification
time. Nothing here opens anything but folders, or follows a link: a link is removed as a link,
and a folder is walked through descriptors opened with O_NOFOLLOW | O_DIRECTORY, so neither a
FIFO (whose opening would wait for a writer) nor a link out of the cache folder is ever entered.
"""
from __future__ import annotations

import decimal
import errno
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
MAX_SIZE = (1 << 63) - 1   # bytes: a larger --max-size is an error, not a limit
_MAX_DEPTH = 64            # folders nested deeper in a damaged entry are not walked
# Opening a folder this way fails at once on a link (ELOOP) or anything but a folder (ENOTDIR).
_FOLDER_FLAGS = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
_BY_DESCRIPTOR = (os.open in os.supports_dir_fd and os.unlink in os.supports_dir_fd
                  and os.rmdir in os.supports_dir_fd and os.stat in os.supports_dir_fd
                  and os.scandir in os.supports_fd and hasattr(os, "O_NOFOLLOW")
                  and hasattr(os, "O_DIRECTORY"))


@dataclass(frozen=True)
class Member:
    """One file of a group: its size and modification time, and for a temporary its writer's pid."""
    path: Path
    size: int
    mtime: float
    kind: str              # "entry", "lock" or "temporary"
    suffix: str = ""       # the entry suffix it belongs to (".so" for X.so, X.so.lock, X.so.PID.R.tmp)
    pid: int | None = None
    damaged: bool = False  # a folder, link, FIFO or device in place of the file


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
    removed_temporary_folders: int = 0   # of dead processes, in the temporary folder
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"removed {_count(self.removed_entries, 'entry')} and {_count(self.removed_leftovers, 'leftover')} "
                f"of dead builders ({_count(self.removed_files, 'file')}, {_human(self.removed_bytes)})")
        if self.opencl_removed:
            text += " and the opencl folder"
        if self.removed_temporary_folders:
            text += (f" and {_count(self.removed_temporary_folders, 'folder')} of dead processes from "
                     f"the temporary folder")
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
    damaged = not stat.S_ISREG(info.st_mode)
    size = _tree_size(path)[1] if stat.S_ISDIR(info.st_mode) else info.st_size
    entry = _ENTRY.fullmatch(_entry_name(name))
    return Member(path, size, info.st_mtime, kind, entry["suffix"] if entry else "", pid, damaged)


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
    if not whole:   # a lock file no process holds is never made, nor one damaged (nobody holds it)
        targets = [t for t in targets if _is_file(build.lock_file(t))]
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
    damaged = [m for m in files if m.damaged]
    size = sum(m.size for m in files)
    opencl = folder / "opencl"
    mode = _mode(opencl)
    if mode is None or stat.S_ISDIR(mode):
        opencl_files, opencl_bytes = _tree_size(opencl)
        opencl_line = f"{opencl_files} files ({_human(opencl_bytes)})"
    else:
        opencl_bytes = 0
        opencl_line = f"none: {_kind(mode)} in its place (not followed; clear removes it)"
    libraries = sum(1 for m in files if m.kind == "entry" and m.suffix == LIBRARY and not m.damaged)
    return (f"cache folder: {folder}\n"
            f"libraries: {libraries}\n"
            f"files: {len(files)} ({_human(size)})\n"
            f"entries: {sum(g.is_entry() for g in groups)}, {in_use} in use (another process holds their lock)\n"
            f"leftovers of dead builders: {len(left)} ({_human(sum(m.size for m in left))})\n"
            f"damaged: {len(damaged)} (folders, links or special files where cache files belong; "
            f"clear removes them)\n"
            f"opencl folder: {opencl_line}\n"
            f"folders of dead processes in the temporary folder: {sum(d for _, d in temporary_folders())}\n"
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
    existed = _mode(opencl) is not None
    try:   # pyopencl builds again what it misses; a link or FIFO in its place goes as it is
        _discard(opencl)
    except OSError:
        pass
    report.opencl_removed = existed and _mode(opencl) is None
    _sweep_temporary_folders(report)
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
    if max_size is not None and not max_size >= 0:
        raise TdslBuildError(f"the size limit must be a number of bytes >= 0, not {max_size}")
    try:
        cutoff = time.time() - float(older_than_days) * 86400.0
    except OverflowError:   # an int past the floats: no age limit, as `inf`
        cutoff = -math.inf
    report = _sweep(_folder(), lambda group: group.last_used() < cutoff, max_size)
    _sweep_temporary_folders(report)
    return _checked(report)


# What tdsl makes in the temporary folder, named with the pid of the process that made it: the
# features probes' folder (codegen/build.py) and the cache folder of a process whose own cannot
# be written (codegen/cache.py). A process killed with `kill -9` leaves them behind.
_TEMPORARY_FOLDER = re.compile(r"tdsl-(?:cache|probe)-(?P<pid>\d+)-[^/]+")


def temporary_folders() -> list[tuple[Path, bool]]:
    """(folder, whether its process is gone) of this user's tdsl folders in the temporary folder."""
    import tempfile
    found = []
    try:
        with os.scandir(tempfile.gettempdir()) as entries:
            for entry in entries:
                match = _TEMPORARY_FOLDER.fullmatch(entry.name)
                if match is None:
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode) and (not hasattr(os, "getuid") or info.st_uid == os.getuid()):
                    found.append((Path(entry.path), not _alive(int(match["pid"]))))
    except OSError:
        pass
    return found


def _sweep_temporary_folders(report: Report) -> None:
    for folder, dead in temporary_folders():
        if dead:
            try:
                _remove_tree(folder)
                report.removed_temporary_folders += 1
            except FileNotFoundError:
                pass
            except OSError as err:
                report.failures.append(f"{folder}: {err.strerror or err}")


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
    """Remove whatever stands at `path` (see `_discard`): True; False when it was gone already
    (another clear); None when it cannot be removed (the reason goes to the report)."""
    try:
        _discard(path)
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


def _mode(path: Path) -> int | None:
    """The mode of `path` itself (a link is not followed); None when nothing is there."""
    try:
        return os.lstat(path).st_mode
    except OSError:
        return None


def _is_file(path: Path) -> bool:
    mode = _mode(path)
    return mode is not None and stat.S_ISREG(mode)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "a file"


def _discard(path: Path) -> None:
    """Remove what stands at `path`: a file, link, FIFO or device is unlinked (never opened nor
    followed), a real folder removed with what it holds (see `_remove_tree`). OSError when that
    fails, FileNotFoundError when nothing is there."""
    if stat.S_ISDIR(os.lstat(path).st_mode):
        _remove_tree(path)
    else:
        path.unlink()


def _open_folder(name, dir_fd: int | None = None) -> int:
    """A descriptor of the folder `name`; OSError at once for a link (ELOOP), anything but a
    folder (ENOTDIR), or a folder that changed into one of those since it was looked at."""
    return os.open(name, _FOLDER_FLAGS, dir_fd=dir_fd)


def _remove_tree(path: Path) -> None:
    """Remove the folder `path` and everything in it, the links in it as links."""
    if not _BY_DESCRIPTOR:   # no FIFOs nor descriptor-relative calls (Windows): shutil checks links
        shutil.rmtree(path)
        return
    parent = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        _remove_in(parent, path.name, path, 0)
    finally:
        os.close(parent)


def _remove_in(dir_fd: int, name: str, path: Path, depth: int) -> None:
    try:
        is_folder = stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        if depth == 0:
            raise
        return
    if is_folder:
        if depth >= _MAX_DEPTH:
            raise OSError(errno.ELOOP, f"folders nested more than {_MAX_DEPTH} deep", str(path))
        try:
            fd = _open_folder(name, dir_fd)
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            is_folder = False   # replaced by something else meanwhile: unlinked as it is
        else:
            try:
                with os.scandir(fd) as entries:
                    names = [entry.name for entry in entries]
                for inner in names:
                    _remove_in(fd, inner, path / inner, depth + 1)
            finally:
                os.close(fd)
            os.rmdir(name, dir_fd=dir_fd)
            return
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        if depth == 0:
            raise


def _tree_size(folder: Path) -> tuple[int, int]:
    """The files in the real folder `folder` and their size, links counted as themselves and
    never followed; (0, 0) when it is missing or no folder."""
    if not _BY_DESCRIPTOR:
        mode = _mode(folder)
        if mode is None or not stat.S_ISDIR(mode):
            return 0, 0
        files = size = 0
        for root, _, names in os.walk(folder):
            for name in names:
                try:
                    size += os.lstat(os.path.join(root, name)).st_size
                    files += 1
                except OSError:
                    pass
        return files, size
    try:
        top = _open_folder(folder)
    except OSError:
        return 0, 0
    files = size = 0
    pending = [(top, 0)]
    try:
        while pending:
            fd, depth = pending.pop()
            try:
                with os.scandir(fd) as it:
                    entries = list(it)
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if not stat.S_ISDIR(info.st_mode):
                        files += 1
                        size += info.st_size
                    elif depth < _MAX_DEPTH:
                        try:
                            pending.append((_open_folder(entry.name, fd), depth + 1))
                        except OSError:
                            pass
            except OSError:
                pass
            finally:
                os.close(fd)
    finally:
        for fd, _ in pending:
            os.close(fd)
    return files, size


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from `500M`, `2G`, `100K`, `1.5T` (powers of 1024; a trailing B or iB allowed) or
    `12345`, in ASCII digits; at most MAX_SIZE. ValueError for anything else."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kmgt]?)(?:i?b)?\s*", text.lower(), re.ASCII)
    if not match:
        raise ValueError(f"{_shown(text)} is not a size: a number of bytes, or one followed by K, M, G or T")
    whole, _, fraction = match[1].partition(".")
    whole = whole.lstrip("0")
    if len(whole) > 24:   # past MAX_SIZE whatever the unit; never converted (no float infinity)
        raise ValueError(f"{_shown(text)} is too large a size: at most {MAX_SIZE} bytes (8 EiB)")
    exact = decimal.Context(prec=80, rounding=decimal.ROUND_DOWN)
    value = exact.multiply(decimal.Decimal(f"{whole or 0}.{fraction[:40] or 0}"), _UNITS[match[2]])
    if value > MAX_SIZE:
        raise ValueError(f"{_shown(text)} is too large a size: at most {MAX_SIZE} bytes (8 EiB)")
    return int(value)


def parse_days(text: str) -> float:
    """A number of days >= 0 in ASCII digits, with an optional exponent (`1.5`, `30`, `1e3`);
    `inf`, or a number too large for a float, means no age limit. ValueError for anything else."""
    number = r"\s*\+?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf|infinity)\s*"
    days = float(text) if re.fullmatch(number, text.lower(), re.ASCII) else math.nan
    if not days >= 0:
        raise ValueError(f"{_shown(text)} is not a number of days >= 0 (or inf: no age limit)")
    return days


def _shown(text: str) -> str:
    """`text` quoted for a message, its middle left out when it is long."""
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}...{text[-8:]!r} ({len(text)} characters)"


def _count(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"
