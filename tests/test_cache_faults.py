"""The compile cache folder under faults (codegen/cache.py, codegen/build.py): a read-only, a
full, a missing or a shared folder, damaged entries of every kind, long and odd names, a
compiler command that cannot be read. Each case gets a tdsl error that says what to do, or
works (in a temporary folder, said once), and never hangs, never a raw OSError.

Read-only and full folders are real: a tmpfs mounted read-only or filled up, in a user and
mount namespace of their own (`unshare -r -m`), so the test needs no privileges and leaves
nothing mounted. Cases that could hang (a FIFO in place of an entry) run in a subprocess with
a timeout.
"""
from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

import tdsl
from conftest import IN_CI, require_target
from tdsl.codegen import build, cache
from tdsl.errors import TdslWarning

SOURCE = "fn f(x: f64[n]) -> f64[n] {{ return x * {scale} + 0.5 }}"

# Compiles two new modules, prints one JSON line: their results and the warnings raised.
SCRIPT = """
import json, sys, warnings, numpy as np, tdsl
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    results = []
    for scale in SCALES:
        m = tdsl.compile("fn f(x: f64[n]) -> f64[n] {{ return x * %r + 0.5 }}" % scale, target="c")
        results.append(m.f(np.arange(3.0)).tolist())
print(json.dumps({{"results": results,
                  "warnings": [(w.category.__name__, str(w.message)) for w in seen]}}))
"""


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    require_target("c")
    folder = tmp_path / "cache"
    monkeypatch.setenv("TDSL_CACHE_DIR", str(folder))
    return folder


def run_script(scales, env=None, prefix=(), timeout=240):
    script = textwrap.dedent(SCRIPT.format()).replace("SCALES", repr(list(scales)))
    done = subprocess.run([*prefix, sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def expected(scales):
    return [(np.arange(3.0) * s + 0.5).tolist() for s in scales]


@functools.lru_cache(maxsize=None)
def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-r", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt 2>/dev/null || "
                           "mount -t tmpfs tmpfs \"$0\"", "/tmp"], capture_output=True).returncode == 0


def in_mounted_tmpfs(folder, options: str, then: str = "") -> list[str]:
    """The command prefix that runs a command with a tmpfs (`options`) mounted on `folder`."""
    if not namespaces_work():
        message = "unshare -r -m (user and mount namespaces) is not available here"
        if IN_CI:   # the read-only and full folders must be tested in CI, not skipped
            pytest.fail(message)
        pytest.skip(message)
    q = shlex.quote(str(folder))
    setup = f"mount -t tmpfs -o {options},mode=0700 tmpfs {q}" + (f" && {then}" if then else "")
    return ["unshare", "-r", "-m", "sh", "-c", f'{setup} && exec "$@"', "sh"]


def env_with(folder) -> dict:
    return dict(os.environ, TDSL_CACHE_DIR=str(folder))


# -- folders that cannot be written --------------------------------------------------------------

def check_fell_back(outcome, scales, folder, reason):
    assert outcome["results"] == expected(scales)
    said = [text for kind, text in outcome["warnings"] if kind == "TdslWarning"]
    assert len(said) == 1, outcome["warnings"]   # said once, for both modules
    assert str(folder) in said[0] and reason in said[0] and "TDSL_CACHE_DIR" in said[0]


def test_a_read_only_cache_folder_builds_in_a_temporary_one(tmp_path):
    require_target("c")
    folder = tmp_path / "ro"
    folder.mkdir()
    q = shlex.quote(str(folder))
    prefix = in_mounted_tmpfs(folder, "size=4m", then=f"mount -o remount,ro {q}")
    outcome = run_script([1.25, 2.25], env=env_with(folder), prefix=prefix)
    check_fell_back(outcome, [1.25, 2.25], folder, "cannot be written")


@pytest.mark.parametrize("out_of", ["bytes", "inodes"])
def test_a_full_cache_folder_builds_in_a_temporary_one(tmp_path, out_of):
    require_target("c")
    folder = tmp_path / "full"
    folder.mkdir()
    q = shlex.quote(str(folder))
    if out_of == "bytes":
        options, fill = "size=256k", f"(head -c 4M /dev/zero > {q}/filler 2>/dev/null || true)"
    else:   # no file can be made, not even an empty lock file
        options, fill = "size=4m,nr_inodes=8", f"(for i in 1 2 3 4 5 6 7 8 9; do touch {q}/f$i 2>/dev/null; done; true)"
    outcome = run_script([1.5, 2.5], env=env_with(folder), prefix=in_mounted_tmpfs(folder, options, fill))
    check_fell_back(outcome, [1.5, 2.5], folder, "No space left on device")


def test_a_cache_folder_made_read_only_while_a_process_runs(tmp_path):
    require_target("c")
    folder = tmp_path / "later_ro"
    folder.mkdir()
    script = textwrap.dedent(f"""
        import json, subprocess, warnings, numpy as np, tdsl
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            first = tdsl.compile("fn f(x: f64[n]) -> f64[n] {{ return x * 1.125 }}", target="c").f(np.ones(1))
            subprocess.run(["mount", "-o", "remount,ro", {str(folder)!r}], check=True)
            second = tdsl.compile("fn f(x: f64[n]) -> f64[n] {{ return x * 2.125 }}", target="c").f(np.ones(1))
        print(json.dumps([first.tolist(), second.tolist(), [str(w.message) for w in seen]]))
        """)
    done = subprocess.run([*in_mounted_tmpfs(folder, "size=4m"), sys.executable, "-c", script],
                          env=env_with(folder), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    first, second, said = json.loads(done.stdout.strip().splitlines()[-1])
    assert first == [1.125] and second == [2.125]
    assert len(said) == 1 and "Read-only file system" in said[0]


def test_a_nearly_full_cache_folder_where_the_library_does_not_fit(tmp_path):
    """The source fits but the compiler cannot write the library: the build moves too."""
    require_target("c")
    folder = tmp_path / "nearly"
    folder.mkdir()
    # leave room for the features marker, lock files and the C source (~30 KB), not the library
    fill = f"(head -c 180K /dev/zero > {shlex.quote(str(folder))}/filler 2>/dev/null || true)"
    outcome = run_script([1.75], env=env_with(folder), prefix=in_mounted_tmpfs(folder, "size=224k", fill))
    assert outcome["results"] == expected([1.75])
    assert len([kind for kind, _ in outcome["warnings"] if kind == "TdslWarning"]) <= 1


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file"])
def test_a_cache_folder_that_cannot_be_made_builds_in_a_temporary_one(tmp_path, where):
    require_target("c")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    folder = blocker / "cache" if where == "under_a_file" else blocker
    outcome = run_script([3.25, 4.25], env=env_with(folder))
    check_fell_back(outcome, [3.25, 4.25], folder, "not a" if where == "is_a_file" else "Not a directory")
    assert blocker.read_text() == "not a folder"


def test_the_temporary_folder_is_removed_at_exit(tmp_path):
    require_target("c")
    (tmp_path / "a_file").write_text("x")
    env = env_with(tmp_path / "a_file" / "cache") | {"TMPDIR": str(tmp_path)}
    assert run_script([5.25], env=env)["results"] == expected([5.25])
    assert not list(tmp_path.glob("tdsl-cache-*"))


# -- folders that others can write or own -------------------------------------------------------

@pytest.mark.parametrize("mode", [0o775, 0o777, 0o1777, 0o720])
def test_a_cache_folder_others_can_write_is_refused(private_cache, mode):
    private_cache.mkdir()
    private_cache.chmod(mode)
    with pytest.raises(tdsl.TdslBuildError, match="can be written by other users") as info:
        tdsl.compile(SOURCE.format(scale=6.25), target="c")
    assert str(private_cache) in str(info.value) and "chmod go-w" in str(info.value)
    assert sorted(p.name for p in private_cache.iterdir()) == []   # nothing was read or written


def test_tdslc_says_why_a_shared_cache_folder_is_refused(private_cache, tmp_path, capsys):
    from tdsl.cli import main
    private_cache.mkdir()
    private_cache.chmod(0o777)
    program = tmp_path / "p.tdsl"
    program.write_text(SOURCE.format(scale=6.5))
    assert main(["run", str(program), "f", "--arg", "x=[1.0, 2.0]"]) == 1
    err = capsys.readouterr().err
    assert "can be written by other users" in err and "Traceback" not in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a folder away")
def test_a_cache_folder_another_user_owns_is_refused(private_cache):
    private_cache.mkdir(mode=0o700)
    os.chown(private_cache, 65534, 65534)
    with pytest.raises(tdsl.TdslBuildError, match="belongs to another user"):
        tdsl.compile(SOURCE.format(scale=6.75), target="c")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a folder away")
def test_a_cache_folder_swapped_while_a_process_runs_is_checked_again(tmp_path, monkeypatch):
    """Whoever can write the parent could put a link to their own folder in place of the cache
    folder after a first load: the next load checks the folder again."""
    require_target("c")
    link = tmp_path / "cache"
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir(mode=0o700)
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    link.symlink_to(mine)
    monkeypatch.setenv("TDSL_CACHE_DIR", str(link))
    tdsl.compile(SOURCE.format(scale=6.875), target="c")
    link.unlink()
    link.symlink_to(theirs)
    with pytest.raises(tdsl.TdslBuildError, match="belongs to another user"):
        tdsl.compile(SOURCE.format(scale=6.9375), target="c")
    assert list(theirs.iterdir()) == []


def test_lock_files_are_private(private_cache):
    """Another user who can read the cache folder cannot open a lock file, so cannot hold it."""
    tdsl.compile(SOURCE.format(scale=6.96875), target="c")
    locks = list(private_cache.glob("*.lock"))
    assert locks and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in locks)


def test_a_cache_folder_path_that_is_not_utf8_builds_in_a_temporary_one(tmp_path):
    require_target("c")
    env = os.environb.copy()
    env[b"TDSL_CACHE_DIR"] = os.fsencode(tmp_path) + b"/bad\xff/cache"
    script = textwrap.dedent(SCRIPT.format()).replace("SCALES", "[12.25]")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    outcome = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert outcome["results"] == expected([12.25])
    assert [w for w in outcome["warnings"] if w[0] == "TdslWarning" and "UTF-8" in w[1]]


@pytest.mark.parametrize("umask", [0o002, 0o277])
def test_a_new_cache_folder_is_private_whatever_the_umask(tmp_path, umask):
    require_target("c")
    (tmp_path / "deep").mkdir()
    folder = tmp_path / "deep" / "cache"
    script = f"import os; os.umask({umask}); from tdsl.codegen import cache; print(cache.cache_dir())"
    done = subprocess.run([sys.executable, "-c", script], env=env_with(folder), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


# -- names ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("stem", ["a" * 235, "odd name\nwith 'quotes' \"and\" ünïcode", ".hidden", "-dash"])
def test_long_and_odd_file_names_make_short_plain_entry_names(private_cache, stem):
    m = tdsl.compile(SOURCE.format(scale=7.25), target="c", filename=f"{stem}.tdsl")
    np.testing.assert_array_equal(m.f(np.arange(3.0)), np.arange(3.0) * 7.25 + 0.5)
    for entry in private_cache.iterdir():
        assert len(entry.name) < 128, entry.name
        assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in entry.name), entry.name
        assert not entry.name.startswith(".")


# -- the compiler command -------------------------------------------------------------------------

@pytest.mark.parametrize("variable", ["TDSL_CC", "CC"])
@pytest.mark.parametrize("text", ['gcc "-O2', "gcc -I'/my dir", "cc \\"])
def test_a_compiler_command_that_cannot_be_read_is_a_build_error(private_cache, monkeypatch, variable, text):
    monkeypatch.delenv("TDSL_CC", raising=False)
    monkeypatch.setenv(variable, text)
    with pytest.raises(tdsl.TdslBuildError, match=variable) as info:
        tdsl.compile(SOURCE.format(scale=7.5), target="c")
    assert repr(text) in str(info.value) and "quote" in str(info.value)


@pytest.mark.parametrize("text", ["   ", "''", '""'])
def test_a_compiler_command_naming_nothing_is_a_build_error(private_cache, monkeypatch, text):
    monkeypatch.setenv("TDSL_CC", text)
    with pytest.raises(tdsl.TdslBuildError, match="TDSL_CC names no command"):
        tdsl.compile(SOURCE.format(scale=7.625), target="c")


@pytest.mark.parametrize("value", ["1e7", "1e400", "inf", "9" * 40])
def test_a_compiler_timeout_too_large_is_a_build_error(private_cache, monkeypatch, value):
    monkeypatch.setenv("TDSL_CC_TIMEOUT", value)
    with pytest.raises(tdsl.TdslBuildError, match="TDSL_CC_TIMEOUT must be a positive number"):
        tdsl.compile(SOURCE.format(scale=7.6875), target="c")


def test_tdslc_says_why_a_compiler_command_cannot_be_read(private_cache, tmp_path, monkeypatch, capsys):
    from tdsl.cli import main
    monkeypatch.setenv("TDSL_CC", 'gcc "-O2')
    program = tmp_path / "p.tdsl"
    program.write_text(SOURCE.format(scale=7.75))
    assert main(["run", str(program), "f", "--arg", "x=[1.0]"]) == 1
    err = capsys.readouterr().err
    assert "TDSL_CC" in err and "Traceback" not in err


def test_a_compiler_command_with_quoted_spaces_works(private_cache, tmp_path, monkeypatch):
    include = tmp_path / "my dir"
    include.mkdir()
    (include / "extra.h").write_text("#define TDSL_TEST_EXTRA 1\n")
    monkeypatch.setenv("TDSL_CC", f"{shlex.join(build.compiler())} -I{shlex.quote(str(include))} -include extra.h")
    build.usable_features.cache_clear()
    try:
        m = tdsl.compile(SOURCE.format(scale=8.25), target="c")
    finally:
        build.usable_features.cache_clear()
    np.testing.assert_array_equal(m.f(np.arange(3.0)), np.arange(3.0) * 8.25 + 0.5)


# -- damaged entries ------------------------------------------------------------------------------

def damage(path, kind):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "folder":
        (path / "inside").mkdir(parents=True)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "not_utf8":
        path.write_bytes(b"\xff\xfe\x80 not C \xc3\x28")
    elif kind == "truncated":
        path.write_bytes(b"\x7fELF")
    else:
        raise AssertionError(kind)


@pytest.fixture(scope="module")
def built_once(tmp_path_factory):
    """A cache folder holding one module built from SOURCE at 9.25 (copied by each test)."""
    require_target("c")
    folder = tmp_path_factory.mktemp("built") / "cache"
    assert run_script([9.25], env=env_with(folder))["results"] == expected([9.25])
    return folder


@pytest.mark.parametrize("suffix,kind", [
    (".so", "folder"), (".so", "fifo"), (".so", "dev_zero"), (".so", "truncated"),
    (".c", "folder"), (".c", "fifo"), (".c", "dev_zero"), (".c", "not_utf8"),
    (".so.lock", "folder"), (".so.lock", "fifo"), (".so.lock", "dev_zero"),
    ("features", "folder"), ("features", "fifo"), ("features", "dev_zero"), ("features", "not_utf8"),
])
def test_a_damaged_entry_is_rebuilt_without_hanging(built_once, private_cache, suffix, kind):
    shutil.copytree(built_once, private_cache)
    if suffix == "features":
        targets = [p for p in private_cache.glob("features-*.txt")]
    else:
        targets = [p.with_name(p.name[:-3] + suffix) for p in private_cache.glob("*.so")]
    assert len(targets) == 1
    for entry in private_cache.iterdir():   # no warm start: the library path itself is read
        if entry.suffix in (".json", ".pkl"):
            entry.unlink()
    if suffix in (".so.lock", "features"):   # the lock is only taken, the marker only read, by a build
        for library in private_cache.glob("*.so"):
            library.unlink()
    damage(targets[0], kind)
    again = run_script([9.25], env=env_with(private_cache), timeout=120)   # a hang fails here
    assert again["results"] == expected([9.25])
    assert not [w for w in again["warnings"] if w[0] == "TdslWarning"]
    # the entry is a plain file again (a library, its source, a lock file, a marker)
    assert stat.S_ISREG(os.lstat(targets[0]).st_mode)
    if suffix == ".c":   # the kept source is written again, so warm loads can read it
        source = targets[0].read_text(encoding="utf-8")
        assert "9.25" in source
    if suffix == ".so":
        assert build.intact(targets[0])


def test_a_warm_load_after_the_kept_source_was_damaged_is_warm_again(private_cache):
    """A damaged `.c` costs one cold load (which writes it again), not every load from then on."""
    code = textwrap.dedent("""
        import sys, tdsl
        m = tdsl.compile("fn f(x: f64[n]) -> f64[n] { return x * 9.75 + 0.5 }", target="c")
        print("lark" in sys.modules, "9.75" in m.f.source)
        """)

    def load() -> str:
        done = subprocess.run([sys.executable, "-c", code], env=env_with(private_cache), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert load() == "True True"    # cold
    assert load() == "False True"   # warm
    (source,) = private_cache.glob("*.c")
    damage(source, "not_utf8")
    assert load() == "True True"    # cold: the kept source could not be read
    assert load() == "False True"   # warm again
    assert "9.75" in source.read_text(encoding="utf-8")


# -- lock files removed while held ----------------------------------------------------------------

def test_a_lock_file_removed_under_a_waiter_is_taken_again(private_cache):
    """`clear` removes a lock file while holding it; a process that was waiting on the old file
    must not think it holds the lock while another process holds the new one."""
    private_cache.mkdir()
    entry = private_cache / "m-0123456789abcdef0123456789abcdef.so"
    holding, overlaps, order = [], [], []
    guard = threading.Lock()

    def hold(name, seconds):
        with build.entry_lock(entry):
            with guard:
                if holding:
                    overlaps.append((name, tuple(holding)))
                holding.append(name)
                order.append(name)
            time.sleep(seconds)
            with guard:
                holding.remove(name)

    with build.entry_lock(entry):   # "clear": holds the lock, a waiter queues on this file
        waiter = threading.Thread(target=hold, args=("waiter", 0.3))
        waiter.start()
        time.sleep(0.3)
        build.lock_file(entry).unlink()   # ... and removes it before letting go
        newcomer = threading.Thread(target=hold, args=("newcomer", 0.3))
        newcomer.start()
        time.sleep(0.3)
    waiter.join(10)
    newcomer.join(10)
    assert sorted(order) == ["newcomer", "waiter"] and overlaps == []


def test_entry_lock_if_free_says_whether_a_build_holds_the_entry(private_cache):
    private_cache.mkdir()
    entry = private_cache / "m-0123456789abcdef0123456789abcdef.so"
    with build.entry_lock_if_free(entry) as free:
        assert free
    with build.entry_lock(entry):
        seen = []
        probe = threading.Thread(target=lambda: seen.append(build.entry_lock_if_free(entry).__enter__()))
        probe.start()
        probe.join(10)
        assert seen == [False]


@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_a_damaged_opencl_folder_is_replaced(tmp_path, kind):
    require_target("opencl")
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    if kind == "file":
        (folder / "opencl").write_text("not a folder")
    else:
        os.mkfifo(folder / "opencl")
    code = textwrap.dedent("""
        import numpy as np, tdsl
        m = tdsl.compile("fn f(x: f64[n]) -> f64[n] { return x * 2.5 }", target="opencl")
        print(m.f(np.arange(3.0)).tolist())
        """)
    done = subprocess.run([sys.executable, "-c", code], env=env_with(folder), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0.0, 2.5, 5.0]" and (folder / "opencl").is_dir()


# -- the parser's and the templates' caches ---------------------------------------------------------

PARSE_AND_RENDER = textwrap.dedent("""
    import numpy as np, tdsl
    m = tdsl.compile("fn f(x: f64[n]) -> f64[n] { return x * 11.25 }", target="c")
    print(m.f(np.ones(2)).tolist())
    """)


def run_with_tmpdir(cache_folder, tmpdir) -> str:
    done = subprocess.run([sys.executable, "-c", PARSE_AND_RENDER], capture_output=True, text=True, timeout=120,
                          env=env_with(cache_folder) | {"TMPDIR": str(tmpdir)})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_parser_tables_are_kept_in_the_private_cache_folder(private_cache, tmp_path):
    """Lark's own cache is a pickle under a predictable name in the shared temporary folder, where
    another user could plant one: tdsl keeps it in its private folder instead."""
    shared = tmp_path / "shared_tmp"
    shared.mkdir()
    assert run_with_tmpdir(private_cache, shared) == "[11.25, 11.25]"
    assert not [p for p in shared.rglob("*") if "lark" in p.name]
    (kept,) = private_cache.glob("parser-*.lark")
    damage(kept, "fifo")   # and a FIFO there is replaced, not waited on
    for entry in private_cache.glob("warm-*"):
        entry.unlink()
    assert run_with_tmpdir(private_cache, shared) == "[11.25, 11.25]"
    assert stat.S_ISREG(os.lstat(kept).st_mode)


def test_fifos_in_the_template_cache_do_not_hang(private_cache, tmp_path):
    shared = tmp_path / "shared_tmp"
    shared.mkdir()
    assert run_with_tmpdir(private_cache, shared) == "[11.25, 11.25]"
    cached = list(shared.glob("_jinja2-cache-*/*.cache"))
    assert cached
    for path in cached:
        damage(path, "fifo")
    shutil.rmtree(private_cache)   # a cold load again: the templates are rendered
    assert run_with_tmpdir(private_cache, shared) == "[11.25, 11.25]"


def test_a_full_temporary_folder_is_a_build_error_not_a_raw_one(tmp_path):
    """The compiler itself needs TMPDIR: when it is full the load fails, with a tdsl error that
    holds the compiler's message (the probes, the templates' cache say nothing of their own)."""
    require_target("c")
    shared = tmp_path / "full_tmp"
    shared.mkdir()
    fill = f"(head -c 4M /dev/zero > {shlex.quote(str(shared))}/filler 2>/dev/null || true)"
    script = textwrap.dedent("""
        import tdsl
        try:
            tdsl.compile("fn f(x: f64[n]) -> f64[n] { return x * 13.25 }", target="c")
            print("built")
        except tdsl.TdslBuildError as err:
            print("TdslBuildError", "No space left on device" in str(err))
        """)
    done = subprocess.run([*in_mounted_tmpfs(shared, "size=256k", fill), sys.executable, "-c", script],
                          env=env_with(tmp_path / "cache") | {"TMPDIR": str(shared)}, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("TdslBuildError True", "built")
    assert "Traceback" not in done.stderr
