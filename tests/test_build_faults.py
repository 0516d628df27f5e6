"""The build step under faults (codegen/build.py): a flaky, a refusing and a hanging compiler,
damaged features markers, concurrent loaders.

Each test names its own fake compiler through `TDSL_CC`: a shell script that logs its
arguments, fails or hangs when a flag file beside it says so, and otherwise runs the real
compiler. Every test has a private cache folder (`TDSL_CACHE_DIR`).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tdsl
from conftest import require_target
from tdsl.codegen import build

SOURCE = "fn f(x: f64[n]) -> f64[n] {{ return x * {scale} + 0.5 }}"

FAKE_CC = """#!/bin/sh
here=$(dirname "$0")
case "$*" in
    *--version*) exec {real} "$@" ;;
esac
printf '%s\\n' "$*" >> "$here/runs.log"
if [ -f "$here/refuse" ]; then
    for arg in "$@"; do
        if [ "$arg" = "$(cat "$here/refuse")" ]; then
            if [ -f "$here/refuse_once" ]; then rm -f "$here/refuse" "$here/refuse_once"; fi
            echo "fake cc: $arg is not supported" >&2; exit 1
        fi
    done
fi
if [ -f "$here/fail" ]; then echo "fake cc: a lasting failure" >&2; exit 1; fi
if [ -f "$here/fail_count" ]; then   # (not atomic: only for runs one after another)
    left=$(cat "$here/fail_count")
    if [ "$left" -gt 0 ]; then
        echo $((left - 1)) > "$here/fail_count"
        echo "fake cc: a transient failure" >&2
        exit 1
    fi
fi
if [ -f "$here/kill_probes" ]; then   # killed by a signal, as the OOM killer does (not atomic)
    case "$*" in *tdsl-probe-*)
        left=$(cat "$here/kill_probes")
        if [ "$left" -gt 0 ]; then echo $((left - 1)) > "$here/kill_probes"; kill -KILL $$; fi ;;
    esac
fi
if [ -f "$here/hang" ]; then
    sleep 600 &
    echo $! >> "$here/child.pids"
    sleep 600
    exit 1
fi
exec {real} "$@"
"""


class FakeCC:
    """A fake compiler in its own folder; `runs()` are its logged calls (not `--version`)."""

    def __init__(self, folder):
        self.folder = folder
        folder.mkdir()
        self.path = folder / "cc"
        self.path.write_text(FAKE_CC.replace("{real}", shlex.join(build.compiler())))
        self.path.chmod(0o755)

    def runs(self) -> list[str]:
        log = self.folder / "runs.log"
        return log.read_text().splitlines() if log.exists() else []

    def module_runs(self) -> list[str]:
        return [r for r in self.runs() if "tdsl-probe-" not in r]

    def probe_runs(self) -> list[str]:
        return [r for r in self.runs() if "tdsl-probe-" in r]

    def flag(self, name: str, text: str = "") -> None:
        (self.folder / name).write_text(text)


@pytest.fixture
def fake_cc(tmp_path, monkeypatch):
    require_target("c")
    monkeypatch.setenv("TDSL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TDSL_CC_TIMEOUT", raising=False)
    fake = FakeCC(tmp_path / "fakecc")
    monkeypatch.setenv("TDSL_CC", str(fake.path))
    build.usable_features.cache_clear()
    yield fake
    build.usable_features.cache_clear()


def compile_and_check(scale: float):
    m = tdsl.compile(SOURCE.format(scale=scale), target="c")
    np.testing.assert_array_equal(m.f(np.arange(4.0)), np.arange(4.0) * scale + 0.5)
    return m


def cc() -> tuple[str, ...]:
    return build.compiler()


# -- features: probed once, never changed by a module's build ---------------------------------

def test_features_are_probed_once_and_kept(fake_cc):
    compile_and_check(1.5)
    probes = fake_cc.probe_runs()
    assert len(probes) == 1   # one probe of every feature at once
    marker = build.features_marker(cc())
    assert build.read_features(marker) == build.usable_features(cc())
    build.usable_features.cache_clear()
    compile_and_check(2.5)   # a new module in a process that has not read the marker yet
    assert fake_cc.probe_runs() == probes and len(fake_cc.module_runs()) == 2


def test_a_transient_build_failure_never_changes_the_features(fake_cc):
    compile_and_check(3.5)
    marker = build.features_marker(cc())
    recorded = marker.read_bytes() if marker.exists() else None
    features = build.usable_features(cc())
    before = len(fake_cc.module_runs())
    fake_cc.flag("fail_count", "1")   # the next compiler run fails, the ones after it succeed
    with pytest.raises(tdsl.TdslBuildError, match="a transient failure") as info:
        compile_and_check(4.5)
    assert "kept at" in str(info.value)
    assert len(fake_cc.module_runs()) == before + 1   # one attempt: no retry with fewer features
    compile_and_check(4.5)
    assert (marker.read_bytes() if marker.exists() else None) == recorded
    build.usable_features.cache_clear()
    assert build.usable_features(cc()) == features
    last = fake_cc.module_runs()[-1].split()
    for name in features:
        assert all(flag in last for flag in build.FEATURE_FLAGS[name]())


def test_a_feature_the_compiler_refuses_is_probed_off(fake_cc):
    fake_cc.flag("refuse", "-march=native")
    compile_and_check(5.5)
    features = build.usable_features(cc())
    assert "native" not in features
    assert all("-march=native" not in r.split() for r in fake_cc.module_runs())
    # refused in the probe of every feature, then twice on its own; every other feature probed alone
    assert sum("-march=native" in r.split() for r in fake_cc.probe_runs()) == 3
    assert len(fake_cc.probe_runs()) == 1 + 1 + len(build.wanted_features()) + 1
    assert set(features) == set(build.wanted_features()) - {"native"}


def test_a_feature_probe_failing_once_is_not_recorded_off(fake_cc):
    name = "tls_descriptors" if "tls_descriptors" in build.wanted_features() else "native"
    (refused,) = build.FEATURE_FLAGS[name]()
    fake_cc.flag("refuse", refused)
    fake_cc.flag("refuse_once")   # the fake refuses the flag once, then no more
    compile_and_check(5.75)
    assert name in build.usable_features(cc())
    # refused in the probe of every feature, then passed on its own
    assert sum(refused in r.split() for r in fake_cc.probe_runs()) == 2


@pytest.mark.parametrize("damage", [b"tdsl build features 1\nopenmp warp_drive\n", b"openmp native\n",
                                    bytes(range(256)) * 4, b""])
def test_a_damaged_features_marker_is_probed_again(fake_cc, damage):
    marker = build.features_marker(cc())
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_bytes(damage)
    compile_and_check(6.5)
    assert len(fake_cc.probe_runs()) == 1
    assert build.read_features(marker) == build.usable_features(cc())


def test_a_features_marker_that_is_not_a_regular_file_is_probed_again(fake_cc):
    marker = build.features_marker(cc())
    marker.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(marker)   # reading it would block forever
    assert build.read_features(marker) is None
    marker.unlink()
    marker.symlink_to("/dev/zero")
    assert build.read_features(marker) is None


def test_the_features_marker_key_holds_the_tdsl_version(fake_cc, monkeypatch):
    import tdsl.version
    marker = build.features_marker(cc())
    monkeypatch.setattr(tdsl.version, "__version__", tdsl.version.__version__ + ".post999")
    assert build.features_marker(cc()) != marker


def test_a_compiler_that_builds_nothing_records_no_features(fake_cc):
    fake_cc.flag("fail")
    with pytest.raises(tdsl.TdslBuildError, match="a lasting failure"):
        compile_and_check(7.5)
    assert not build.features_marker(cc()).exists()
    assert len(fake_cc.module_runs()) == 1


# -- the compiler timeout ----------------------------------------------------------------------

def test_a_hanging_compiler_times_out_with_its_children(fake_cc, monkeypatch):
    compile_and_check(8.5)   # the features are probed with a working compiler
    monkeypatch.setenv("TDSL_CC_TIMEOUT", "2")
    fake_cc.flag("hang")
    before = len(fake_cc.module_runs())
    start = time.monotonic()
    with pytest.raises(tdsl.TdslBuildError, match=r"timed out after 2 s.*TDSL_CC_TIMEOUT") as info:
        compile_and_check(9.5)
    assert time.monotonic() - start < 20
    assert "kept at" in str(info.value) and str(info.value).count("error:") == 1
    assert len(fake_cc.module_runs()) == before + 1   # never retried
    assert_children_gone(fake_cc)
    assert not list((fake_cc.folder.parent / "cache").glob("*.tmp"))


def test_a_compiler_hanging_in_the_probes_times_out(fake_cc, monkeypatch):
    monkeypatch.setenv("TDSL_CC_TIMEOUT", "2")
    fake_cc.flag("hang")
    start = time.monotonic()
    with pytest.raises(tdsl.TdslBuildError, match=r"timed out after 2 s.*TDSL_CC_TIMEOUT") as info:
        compile_and_check(10.5)
    assert str(info.value).count("error:") == 1
    assert time.monotonic() - start < 20
    assert not build.features_marker(cc()).exists()
    assert_children_gone(fake_cc)
    # one timeout, not one in the background probe and another in the build
    assert len(fake_cc.probe_runs()) == 1 and time.monotonic() - start < 4 + 2


def test_a_probe_killed_by_a_signal_records_nothing(fake_cc):
    """A compiler killed during the probes (the OOM killer) says nothing about the features: the
    answer serves this process, and the next one probes again."""
    fake_cc.flag("kill_probes", "1")   # the probe of every feature at once is killed
    compile_and_check(10.75)
    assert build.usable_features(cc()) == build.wanted_features()   # each passed on its own
    assert not build.features_marker(cc()).exists()
    build.usable_features.cache_clear()
    compile_and_check(10.875)   # a new module: its build asks for the features, probed again
    assert build.read_features(build.features_marker(cc())) == build.wanted_features()


def assert_children_gone(fake: FakeCC) -> None:
    """Every process the hanging fake compilers started has been killed."""
    pids = [int(line) for line in (fake.folder / "child.pids").read_text().split()]
    assert pids
    for pid in pids:
        assert_gone(pid)


def assert_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return   # killed, waiting for init to reap it
        except (FileNotFoundError, ProcessLookupError):
            return
        except OSError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    pytest.fail(f"the compiler's child process {pid} is still running")


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan", "inf"])
def test_an_invalid_compiler_timeout_is_a_build_error(fake_cc, monkeypatch, value):
    monkeypatch.setenv("TDSL_CC_TIMEOUT", value)
    with pytest.raises(tdsl.TdslBuildError, match="TDSL_CC_TIMEOUT"):
        compile_and_check(11.5)


# -- one compile for concurrent loads ----------------------------------------------------------

@pytest.mark.slow
def test_sixteen_processes_loading_one_new_program_compile_it_once(fake_cc):
    source = SOURCE.format(scale=12.5)
    start = time.time() + 5   # every process starts loading at this moment, after its imports
    script = f"""
        import time, numpy as np, tdsl
        while time.time() < {start}:
            time.sleep(0.001)
        m = tdsl.compile({source!r}, target="c")
        assert np.array_equal(m.f(np.arange(6.0)), np.arange(6.0) * 12.5 + 0.5)
        """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(16)]
    outcomes = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in outcomes), [err for code, err in outcomes if code]
    assert len(fake_cc.module_runs()) == 1
    assert len(fake_cc.probe_runs()) == 1   # and one probe
    assert len(list((fake_cc.folder.parent / "cache").glob("*.so"))) == 1


def test_a_lock_held_too_long_is_a_build_error_naming_the_lock(fake_cc, monkeypatch):
    build.usable_features(cc())   # probe first, so the failing run is the module's
    fake_cc.flag("fail_count", "1")
    with pytest.raises(tdsl.TdslBuildError, match=r"kept at (\S+\.c)") as info:
        compile_and_check(13.5)
    library = re.search(r"kept at (\S+)\.c", str(info.value)).group(1) + ".so"
    lock = library + ".lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time, filelock
        with filelock.FileLock({lock!r}):
            print("held", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("TDSL_CC_TIMEOUT", "1")
        monkeypatch.setattr(build, "LOCK_MARGIN_S", 1.0)
        with pytest.raises(tdsl.TdslBuildError, match=r"waited 2 s for the lock file .*\.so\.lock") as info:
            compile_and_check(13.5)
        assert lock in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    compile_and_check(13.5)   # the lock is free again
