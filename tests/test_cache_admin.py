"""Looking after the compile cache (codegen/cache_admin.py): `tdslc cache info`, `clear` and `prune`.

An entry being built by another process is never removed (a build running during a clear
succeeds and keeps its entry), the temporaries a killed builder left are removed, prune goes
by age and by size and removes whole entries. Every test has its own cache folder.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tdsl
from conftest import require_target
from tdsl import cli
from tdsl.codegen import build, cache_admin

SOURCE = "fn f(x: f64[n]) -> f64[n] {{ return x * {scale} - 0.25 }}"
DAY = 86400.0

# A compiler that waits (at most 60 s) for the file `go` beside it before building a module of the
# cache folder, after writing its pid to `started`; probes and `--version` run at once.
SLOW_CC = """#!/bin/sh
here=$(dirname "$0")
case "$*" in
    *"$TDSL_CACHE_DIR"*)
        echo $$ > "$here/started.tmp" && mv "$here/started.tmp" "$here/started"
        i=0
        while [ ! -f "$here/go" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done ;;
esac
exec {real} "$@"
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A private cache folder for one test (not created yet)."""
    require_target("c")
    path = tmp_path / "cache"
    monkeypatch.setenv("TDSL_CACHE_DIR", str(path))
    monkeypatch.delenv("TDSL_CC_TIMEOUT", raising=False)
    build.usable_features.cache_clear()
    yield path
    build.usable_features.cache_clear()


@pytest.fixture
def slow_cc(tmp_path):
    """A folder holding the slow compiler `cc` (see SLOW_CC)."""
    here = tmp_path / "slowcc"
    here.mkdir()
    script = here / "cc"
    script.write_text(SLOW_CC.replace("{real}", shlex.join(build.compiler())))
    script.chmod(0o755)
    return here


def compile_and_check(scale: float):
    m = tdsl.compile(SOURCE.format(scale=scale), target="c")
    np.testing.assert_array_equal(m.f(np.arange(4.0)), np.arange(4.0) * scale - 0.25)
    return m


def group(library):
    """The files of a library's entry: NAME-KEY.*"""
    return sorted(p.name for p in library.parent.glob(library.stem + ".*"))


def age(paths, seconds: float) -> None:
    stamp = time.time() - seconds
    for path in paths:
        os.utime(path, (stamp, stamp))


def tdslc(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["cache", *args])
    out, err = capsys.readouterr()
    return code, out, err


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def builder(folder, cc_folder, scale: float) -> subprocess.Popen:
    """A process compiling the module with `scale` through the slow compiler."""
    script = f"""
        import numpy as np, tdsl
        m = tdsl.compile({SOURCE.format(scale=scale)!r}, target="c")
        assert np.array_equal(m.f(np.arange(4.0)), np.arange(4.0) * {scale} - 0.25)
        print("ok")
        """
    env = dict(os.environ, TDSL_CACHE_DIR=str(folder), TDSL_CC=str(cc_folder / "cc"))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text().strip()


# -- clear and prune never break a build --------------------------------------------------------

def test_clear_while_another_process_builds_keeps_its_entry(folder, slow_cc, capsys):
    proc = builder(folder, slow_cc, 1.5)
    try:
        wait_for(slow_cc / "started")   # the builder holds the lock, its source is written
        code, out, _ = tdslc(capsys, "clear")
        out_info = cache_admin.info()
    finally:
        (slow_cc / "go").touch()
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and stdout.strip() == "ok", stderr
    assert code == 0 and "kept 1 entry in use (another process holds their lock)" in out
    assert "entries: " in out_info and "1 in use" in out_info
    (library,) = folder.glob("*.so")
    assert build.intact(library) and library.with_suffix(".c").exists()
    assert not list(folder.glob("*.tmp"))


def test_a_group_being_built_is_kept_by_prune_and_clear(folder, capsys):
    compile_and_check(2.5)
    compile_and_check(3.5)
    libraries = sorted(folder.glob("*.so"))
    held = libraries[0]
    age(folder.iterdir(), 60 * DAY)
    age(folder.glob(held.stem + ".*"), 70 * DAY)   # the least recently used
    size = sum(p.stat().st_size for p in folder.glob(held.stem + ".*"))
    with build.entry_lock(held):
        code, out, _ = tdslc(capsys, "prune", "--older-than", "inf", "--max-size", str(size))
        assert code == 0 and "kept 1 entry in use" in out   # so the next ones go instead
        assert held.exists() and held.with_suffix(".c").exists() and not libraries[1].exists()
        assert sum(p.stat().st_size for p in folder.iterdir()) <= size
        code, out, _ = tdslc(capsys, "clear")
        assert code == 0 and "kept 1 entry in use" in out
        assert sorted(p.name for p in folder.iterdir()) == group(held)
    code, out, _ = tdslc(capsys, "clear")
    assert code == 0 and "removed 1 entry" in out and not list(folder.iterdir())


# -- leftovers of dead builders ----------------------------------------------------------------

def test_a_builder_killed_during_its_build_leaves_a_leftover_that_prune_removes(folder, slow_cc, capsys):
    proc = builder(folder, slow_cc, 4.5)
    compiler = int(wait_for(slow_cc / "started"))
    proc.kill()   # SIGKILL: the builder cannot clean up
    proc.wait()
    os.killpg(compiler, signal.SIGKILL)   # the compiler runs in a session of its own
    (temporary,) = folder.glob("*.so.*.tmp")
    assert temporary.name.split(".")[-3] == str(proc.pid)
    assert "leftovers of dead builders: 1 (" in cache_admin.info()
    code, out, _ = tdslc(capsys, "prune")
    assert code == 0 and "1 leftover of dead builders" in out
    assert not temporary.exists() and temporary.with_name(temporary.name.split(".")[0] + ".c").exists()
    assert "leftovers of dead builders: 0 (" in cache_admin.info()
    compile_and_check(4.5)   # builds again over what is left of the entry


@pytest.mark.parametrize("action", ["prune", "clear"])
def test_temporaries_of_dead_or_old_writers_are_removed_those_of_live_ones_kept(folder, capsys, action):
    compile_and_check(5.5)
    (library,) = folder.glob("*.so")
    dead = library.with_name(f"{library.name}.{dead_pid()}.ab1cd2ef.tmp")
    live = library.with_name(f"{library.name}.{os.getpid()}.gh3ij4kl.tmp")
    old = library.with_name(f"{library.name}.{os.getpid()}.mn5op6qr.tmp")
    unnamed = library.with_name(f"{library.name}.st7uv8wx.tmp")   # no pid in its name: its age decides
    for path in (dead, live, old, unnamed):
        path.write_bytes(b"x" * 100)
    age([old], 2 * 3600)
    assert "leftovers of dead builders: 2 (200 bytes)" in cache_admin.info()
    code, out, _ = tdslc(capsys, action)
    assert code == 0 and "2 leftovers of dead builders" in out
    assert "kept 2 temporary files that running processes are writing" in out
    assert live.exists() and unnamed.exists() and not dead.exists() and not old.exists()
    age([unnamed], 2 * 3600)
    code, out, _ = tdslc(capsys, action)
    assert not unnamed.exists() and live.exists()


# -- prune: by age, by size, whole groups -------------------------------------------------------

def test_prune_removes_whole_entries_unused_for_longer_than_the_age(folder, capsys):
    compile_and_check(6.5)
    (old_library,) = folder.glob("*.so")
    everything_else = list(folder.iterdir())
    compile_and_check(7.5)
    (new_library,) = set(folder.glob("*.so")) - {old_library}
    age(everything_else, 40 * DAY)
    code, out, _ = tdslc(capsys, "prune", "--older-than", "50")
    assert code == 0 and "removed 0 entries" in out and old_library.exists()
    code, out, _ = tdslc(capsys, "prune")   # the default: 30 days
    assert code == 0 and "removed " in out and " remain in " in out
    assert group(old_library) == [] and len(group(new_library)) == 3   # .c, .so and .so.lock
    compile_and_check(6.5)   # the pruned module builds again
    assert build.intact(old_library) and old_library.with_suffix(".c").exists()


def test_prune_to_a_size_keeps_the_most_recently_used_entries(folder, capsys):
    libraries = []
    for scale in (8.5, 9.5, 10.5):
        before = set(folder.glob("*.so")) if folder.exists() else set()
        compile_and_check(scale)
        (library,) = set(folder.glob("*.so")) - before
        libraries.append(library)
    age(folder.iterdir(), 10 * DAY)   # the probes' markers and the warm entries: oldest
    for days, library in zip((3, 2, 1), libraries):
        age(library.parent.glob(library.stem + ".*"), days * DAY)
    sizes = [sum(p.stat().st_size for p in library.parent.glob(library.stem + ".*")) for library in libraries]
    code, out, _ = tdslc(capsys, "prune", "--max-size", str(sizes[1] + sizes[2] + 10))
    assert code == 0
    assert group(libraries[0]) == [] and all(len(group(library)) == 3 for library in libraries[1:])
    assert sum(p.stat().st_size for p in folder.iterdir()) <= sizes[1] + sizes[2] + 10
    assert f"2 entries ({cache_admin._human(sizes[1] + sizes[2])}) remain" in out
    code, out, _ = tdslc(capsys, "prune", "--max-size", "0", "--older-than", "inf")
    assert not list(folder.glob("*.so")) and not list(folder.glob("*.c"))
    compile_and_check(8.5)   # pruned modules build again
    compile_and_check(10.5)
    assert len(list(folder.glob("*.so"))) == 2


@pytest.mark.parametrize("args, message", [
    (["--max-size", "12Q"], "'12Q' is not a size"),
    (["--max-size=-5M"], "is not a size"),
    (["--older-than", "-1"], "'-1' is not a number of days >= 0"),
    (["--older-than", "nan"], "is not a number of days"),
    (["--older-than", "soon"], "is not a number of days"),
])
def test_bad_prune_arguments_are_clean_errors(folder, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["cache", "prune", *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err
    with pytest.raises(tdsl.TdslBuildError, match="days >= 0"):
        cache_admin.prune(older_than_days=-1.0)


@pytest.mark.parametrize("text, size", [("500M", 500 << 20), ("2G", 2 << 30), ("100K", 100 << 10),
                                        ("12345", 12345), ("1.5k", 1536), ("64MiB", 64 << 20), ("0", 0)])
def test_sizes(text, size):
    assert cache_admin.parse_size(text) == size


# -- an empty or missing folder; files that vanish or cannot be removed --------------------------

@pytest.mark.parametrize("args", [["info"], ["clear"], ["prune"], ["prune", "--max-size", "1K"]])
def test_an_empty_or_missing_cache_folder(folder, capsys, args):
    for _ in range(2):   # missing, then there and empty
        code, out, err = tdslc(capsys, *args)
        assert code == 0 and err == ""
        if args == ["info"]:
            assert "libraries: 0" in out and "files: 0 (0 bytes)" in out
            assert "entries: 0, 0 in use" in out and "leftovers of dead builders: 0 (0 bytes)" in out
        else:
            assert out.startswith("removed 0 entries and 0 leftovers of dead builders (0 files, 0 bytes)")


@pytest.mark.parametrize("args", [["prune", "--older-than", "0"], ["clear"]])
def test_files_vanishing_during_a_removal_are_fine(folder, capsys, monkeypatch, args):
    compile_and_check(11.5)
    real_unlink = type(folder).unlink

    def racing_unlink(path, missing_ok=False):   # another clear removes the entries first
        real_unlink(path, missing_ok=missing_ok)
        if path.suffix in (".so", ".c"):
            raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(type(folder), "unlink", racing_unlink)
    code, out, err = tdslc(capsys, *args)
    monkeypatch.undo()
    assert code == 0 and err == "" and " remain in " in out and not list(folder.glob("*.so"))


def test_a_file_that_cannot_be_removed_is_a_tdsl_error_naming_it(folder, capsys, monkeypatch):
    compile_and_check(12.5)
    (library,) = folder.glob("*.so")
    real_unlink = type(folder).unlink

    def refusing_unlink(path, missing_ok=False):
        if path == library:
            raise PermissionError(13, "Permission denied", str(path))
        return real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(type(folder), "unlink", refusing_unlink)
    code, out, err = tdslc(capsys, "clear")
    monkeypatch.undo()
    assert code == 1 and "Traceback" not in err
    assert f"could not remove {library}: Permission denied" in err and "error:" in err
    assert library.exists() and not library.with_suffix(".c").exists()


def test_clear_removes_kept_opencl_sources_and_the_opencl_folder_and_nothing_else(folder, capsys):
    compile_and_check(13.5)
    kept = folder / f"m-{'0' * 32}.cl"   # a failed OpenCL build's source
    kept.write_text("kernel void k() {}")
    binaries = folder / "opencl" / "pyopencl-cache" / "data"
    binaries.mkdir(parents=True)
    (binaries / "binary").write_bytes(b"x" * 1000)
    foreign = [folder / "notes.txt", folder / "m-not-a-key.so"]   # not entries: left alone
    for path in foreign:
        path.write_text("mine")
    assert "opencl folder: 1 files (1000 bytes)" in cache_admin.info()
    code, out, _ = tdslc(capsys, "prune")
    assert code == 0 and kept.exists() and binaries.exists()   # prune leaves recent entries and opencl/
    code, out, _ = tdslc(capsys, "clear")
    assert code == 0 and "and the opencl folder" in out
    assert sorted(folder.iterdir()) == sorted(foreign)


def test_loading_a_module_marks_it_used_so_prune_keeps_it(folder, capsys):
    """A module built long ago but loaded today is not "unused": a load moves its library's time
    (at most once a day), on the warm path and on the cold one."""
    compile_and_check(9.5)
    (library,) = folder.glob("*.so")
    for warm in (True, False):
        age(folder.iterdir(), 40 * DAY)
        if not warm:
            for entry in folder.glob("warm-*"):
                entry.unlink()
        code = textwrap.dedent(f"""
            import numpy as np, tdsl
            m = tdsl.compile({SOURCE.format(scale=9.5)!r}, target="c")
            assert np.array_equal(m.f(np.arange(4.0)), np.arange(4.0) * 9.5 - 0.25)
            """)
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
        assert time.time() - library.stat().st_mtime < 3600
        code, out, _ = tdslc(capsys, "prune")
        assert code == 0 and build.intact(library) and library.with_suffix(".c").exists()


# -- damaged entries, FIFOs and links: never opened, never followed, removed by clear -----------

KEY = "0123456789abcdef" * 2


@contextlib.contextmanager
def no_hang(seconds: int = 10):
    """Fails the test (instead of hanging it) when the block takes longer than `seconds`: the
    alarm interrupts a blocking open() of a FIFO."""
    def hung(*_):
        raise AssertionError(f"hung for {seconds} s (a FIFO opened?)")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def outside(tmp_path):
    """A folder outside the cache, with files a link from the cache points at."""
    path = tmp_path / "outside"
    (path / "inner").mkdir(parents=True)
    for name in ("a.so", "inner/b.bin"):
        (path / name).write_bytes(b"y" * 3000)
    return path


def outside_intact(path) -> bool:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) == ["a.so", "inner", "inner/b.bin"]


@pytest.mark.parametrize("make", ["fifo", "link", "file"])
def test_something_else_at_opencl_is_removed_as_it_is_never_opened_nor_followed(folder, outside, capsys, make):
    folder.mkdir()
    opencl = folder / "opencl"
    make_it = {"fifo": lambda: os.mkfifo(opencl), "link": lambda: opencl.symlink_to(outside),
               "file": lambda: opencl.write_bytes(b"z")}[make]
    kind = {"fifo": "a FIFO", "link": "a link", "file": "a file"}[make]
    make_it()
    with no_hang():
        code, out, err = tdslc(capsys, "clear")
    assert code == 0 and err == "" and "and the opencl folder" in out
    assert not os.path.lexists(opencl) and outside_intact(outside)
    make_it()
    with no_hang():
        text = cache_admin.info()
    assert f"opencl folder: none: {kind} in its place" in text
    assert "total size: 0 bytes" in text   # nothing of the outside folder counted
    assert outside_intact(outside)


def test_clear_removes_damaged_entries_and_follows_no_link(folder, outside, capsys):
    folder.mkdir()
    library = folder / f"m-{KEY}.so"   # a folder holding a file, a FIFO and a link out of the cache
    (library / "sub").mkdir(parents=True)
    (library / "sub" / "x").write_bytes(b"x" * 100)
    os.mkfifo(library / "pipe")
    (library / "out").symlink_to(outside)
    os.mkfifo(folder / f"warm-{KEY}.json")
    (folder / f"m-{KEY}.c").symlink_to(outside / "a.so")   # a link in place of an entry file
    (folder / f"n-{KEY}.pkl").symlink_to(outside)
    os.mkfifo(folder / f"n-{KEY}.pkl.lock")                # a FIFO in place of a lock file
    foreign = folder / "notes.txt"
    foreign.write_text("mine")
    binaries = folder / "opencl" / "data"   # a real opencl folder holding a FIFO and a link out
    binaries.mkdir(parents=True)
    os.mkfifo(binaries / "pipe")
    (binaries / "out").symlink_to(outside)
    with no_hang():
        text = cache_admin.info()
        assert "opencl folder: 2 files (" in text
        assert "damaged: 5 (" in text and "libraries: 0" in text and "entries: 3, 0 in use" in text
        code, out, err = tdslc(capsys, "prune")   # all just made: kept
        assert code == 0 and library.is_dir() and "3 entries" in out
        code, out, err = tdslc(capsys, "clear")
    assert code == 0 and err == "" and out.startswith("removed 3 entries")
    assert "0 entries (0 bytes) remain" in out
    assert sorted(folder.iterdir()) == [foreign] and outside_intact(outside)
    with no_hang():
        assert "damaged: 0 (" in cache_admin.info()


def test_damaged_entries_of_a_built_module_are_cleared_and_it_builds_again(folder, capsys):
    compile_and_check(14.5)
    (library,) = folder.glob("*.so")
    (warm,) = folder.glob("warm-*.json")
    library.unlink()
    library.mkdir()
    warm.unlink()
    os.mkfifo(warm)
    with no_hang():
        assert "damaged: 2 (" in cache_admin.info()
        code, out, _ = tdslc(capsys, "clear")
    assert code == 0 and " 0 entries (0 bytes) remain" in out and not list(folder.iterdir())
    compile_and_check(14.5)


def test_prune_goes_by_the_own_time_of_damaged_entries(folder, outside, capsys):
    folder.mkdir()
    old = [folder / f"o-{KEY}.so", folder / f"o-{KEY}.c", folder / f"w-{KEY}.json"]
    old[0].mkdir()
    old[1].symlink_to(outside)
    os.mkfifo(old[2])
    recent = folder / f"r-{KEY}.json"
    recent.symlink_to(outside / "a.so")
    stamp = time.time() - 40 * DAY
    for path in old:
        os.utime(path, (stamp, stamp), follow_symlinks=False)
    with no_hang():
        code, out, _ = tdslc(capsys, "prune")
        assert code == 0 and out.startswith("removed 2 entries") and "1 entry (" in out
        assert not any(os.path.lexists(p) for p in old) and recent.is_symlink()
        code, out, _ = tdslc(capsys, "prune", "--max-size", "0")
    assert code == 0 and not list(folder.iterdir()) and outside_intact(outside)


# -- sizes and ages: too large, not finite, not ASCII --------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("1" + "0" * 400, "(401 characters) is too large a size"),
    ("9" * 5000, "(5000 characters) is too large a size"),
    ("8388608T", "is too large a size"),
    ("1e309", "is not a size"), ("nan", "is not a size"), ("inf", "is not a size"),
    ("-0", "is not a size"), ("-1", "is not a size"), ("", "is not a size"),
    ("\u0661\u0662", "is not a size"), ("\uff11\uff12", "is not a size"),
])
def test_sizes_too_large_or_not_numbers_are_clean_errors(folder, capsys, text, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["cache", "prune", f"--max-size={text}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("text", ["nan", "-inf", "-1", "-0", "", "\u0661\u0662", "1_0", "1e"])
def test_ages_not_numbers_are_clean_errors(folder, capsys, text):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["cache", "prune", f"--older-than={text}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "is not a number of days >= 0" in err and "Traceback" not in err


@pytest.mark.parametrize("text", ["inf", "Infinity", "1e309", "1" + "0" * 400])
def test_ages_too_large_mean_no_age_limit(folder, capsys, text):
    folder.mkdir()
    entry = folder / f"m-{KEY}.json"
    entry.write_text("{}")
    age([entry], 10000 * DAY)
    assert cache_admin.parse_days(text) == float("inf")
    code, out, _ = tdslc(capsys, "prune", f"--older-than={text}")
    assert code == 0 and entry.exists() and "1 entry (2 bytes) remain" in out
    cache_admin.prune(older_than_days=10 ** 400)   # an int no float holds: no limit either
    assert entry.exists()


def test_sizes_up_to_the_largest(folder):
    assert cache_admin.parse_size("8388607.99T") == 9223372025859659530   # exact, no float on the way
    assert cache_admin.parse_size("0" * 400 + "1K") == 1024
    assert cache_admin.parse_size("0." + "5" * 5000 + "K") == 568


@pytest.mark.parametrize("action", [["prune"], ["clear"]])
def test_folders_of_dead_processes_in_the_temporary_folder_are_removed(folder, tmp_path, monkeypatch, capsys,
                                                                       action):
    """A process killed while it probed the compiler, or while it built in the temporary folder
    because its cache folder could not be written, leaves tdsl-probe-PID-* or tdsl-cache-PID-*."""
    import tempfile
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    dead, live = dead_pid(), os.getpid()
    (shared / f"tdsl-cache-{dead}-x1y2z3" / "inner").mkdir(parents=True)
    (shared / f"tdsl-cache-{dead}-x1y2z3" / "inner" / "m.so").write_bytes(b"\0" * 10)
    (shared / f"tdsl-probe-{dead}-abc").mkdir()
    (shared / f"tdsl-probe-{live}-def").mkdir()
    (shared / f"tdsl-cache-{live}-ghi").mkdir()
    (shared / "tdsl-cache-unrelated").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (shared / f"tdsl-cache-{dead}-link").symlink_to(outside)   # a link is not one of ours
    code, out, _ = tdslc(capsys, "info")
    assert code == 0 and "folders of dead processes in the temporary folder: 2" in out
    code, out, _ = tdslc(capsys, *action)
    assert code == 0 and "2 folders of dead processes" in out
    assert sorted(p.name for p in shared.iterdir()) == sorted(
        [f"tdsl-probe-{live}-def", f"tdsl-cache-{live}-ghi", "tdsl-cache-unrelated", f"tdsl-cache-{dead}-link"])
    assert outside.is_dir()
