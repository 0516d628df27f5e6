"""The opencl target's cache: warm entries (a program loaded before is not lowered or rendered
again) and program binaries kept in tdsl's compile cache (codegen/opencl_backend.BinaryStore).

PoCL caches its builds itself, so tdsl keeps no binaries for it unless TDSL_OPENCL_BINARIES=1:
these tests set it, to run the store on the PoCL device CI has.
"""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import require_target

PROGRAM = """fn scale(x: f32[n], a: f32) -> f32[n] {{ return a * x + {k}.0 }}
fn total(x: f32[n]) -> f32 {{ return sum(x * x) }}
"""


@pytest.fixture
def opencl(tmp_path, monkeypatch):
    """The backend and runtime, a compile cache of the test's own, and no program memoized."""
    require_target("opencl")
    from tdsl.codegen import opencl_backend, opencl_runtime
    monkeypatch.setenv("TDSL_CACHE_DIR", str(tmp_path / "cache"))
    opencl_backend._built.cache_clear()
    yield opencl_backend, opencl_runtime
    opencl_backend._built.cache_clear()


def program(k: int) -> str:
    """A program text of its own per test (PoCL's kernel cache is shared)."""
    return PROGRAM.format(k=k)


def load(text: str):
    """A load as in a fresh process: no program memoized in this one."""
    from tdsl.codegen import opencl_backend
    opencl_backend._built.cache_clear()
    return tdsl.compile(text, target="opencl")


def results(module) -> tuple:
    x = np.linspace(-2, 2, 1000, dtype=np.float32)
    return module.scale(x, np.float32(1.5)), module.total(x)


def never(*args, **kwargs):
    raise AssertionError("built or lowered again")


# -- warm entries -------------------------------------------------------------------------------

def test_a_warm_load_does_not_lower_or_render_and_gives_the_same_results(opencl, monkeypatch):
    backend, _ = opencl
    text = program(1)
    cold = results(load(text))
    x = np.linspace(-2, 2, 1000, dtype=np.float32)
    np.testing.assert_allclose(cold[0], 1.5 * x + 1.0, rtol=1e-6)
    monkeypatch.setattr(backend.OpenCLTarget, "lower", never)
    monkeypatch.setattr(backend.OpenCLTarget, "render", never)
    module = load(text)
    warm = results(module)
    assert all(np.array_equal(c, w) for c, w in zip(cold, warm))
    assert "__kernel void" in module.scale.source and "__kernel void" in module.total.source


def test_a_damaged_warm_entry_is_compiled_again(opencl):
    from tdsl.codegen import cache
    text = program(2)
    cold = results(load(text))
    (entry,) = cache.cache_dir().glob("warm-*.json")
    data = entry.read_bytes()
    entry.write_bytes(data[:len(data) // 2])   # truncated: not JSON any more
    again = results(load(text))
    assert all(np.array_equal(c, w) for c, w in zip(cold, again))
    assert entry.read_bytes() == data   # written again by the compile


def test_debug_and_guarded_builds_keep_no_warm_entry(opencl):
    from tdsl.codegen import cache
    tdsl.compile(program(3), target="opencl", nan_guard=True)
    assert not list(cache.cache_dir().glob("warm-*.json"))


# -- program binaries -------------------------------------------------------------------------

@pytest.fixture
def binaries(opencl, monkeypatch):
    monkeypatch.setenv("TDSL_OPENCL_BINARIES", "1")
    return opencl


def stored(cache_dir) -> list:
    return sorted((cache_dir / "opencl").glob("program-*.bin"))


def test_a_warm_load_builds_nothing(binaries, monkeypatch):
    backend, runtime = binaries
    from tdsl.codegen import cache
    text = program(4)
    cold = results(load(text))
    (binary,) = stored(cache.cache_dir())
    assert backend.BinaryStore.builds >= 1
    before = backend.BinaryStore.builds
    monkeypatch.setattr(runtime, "build_from_source", never)
    warm = results(load(text))
    assert backend.BinaryStore.builds == before
    assert all(np.array_equal(c, w) for c, w in zip(cold, warm))
    assert stored(cache.cache_dir()) == [binary]


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "refused by the driver", "a folder"])
def test_a_damaged_binary_is_built_again_and_replaced(binaries, damage):
    backend, runtime = binaries
    from tdsl.codegen import build, cache
    text = program(5)
    cold = results(load(text))
    (binary,) = stored(cache.cache_dir())
    good = binary.read_bytes()
    if damage == "flipped byte":
        binary.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    elif damage == "truncated":
        binary.write_bytes(good[:len(good) // 3])
    elif damage == "refused by the driver":   # intact as a cache file, not a binary of this device
        binary.write_bytes(build.with_trailer(b"\x7fELF not a program binary" * 40))
    else:
        binary.unlink()
        binary.mkdir()
        (binary / "inside").write_text("x")
    before = backend.BinaryStore.builds
    again = results(load(text))
    assert backend.BinaryStore.builds == before + 1
    assert all(np.array_equal(c, w) for c, w in zip(cold, again))
    assert build.checked(binary) is not None   # replaced by a good one


def test_another_device_or_driver_misses(binaries, monkeypatch):
    backend, runtime = binaries
    from tdsl.codegen import cache
    text = program(6)
    load(text)
    (first,) = stored(cache.cache_dir())
    identity = runtime.binary_identity
    monkeypatch.setattr(runtime, "binary_identity", lambda device, options: identity(device, options)[:6]
                        + ("another driver version",) + identity(device, options)[7:])
    before = backend.BinaryStore.builds
    load(text)
    assert backend.BinaryStore.builds == before + 1
    assert len(stored(cache.cache_dir())) == 2 and first in stored(cache.cache_dir())


def test_the_identity_holds_driver_version_and_options(binaries):
    _, runtime = binaries
    device = runtime.default_queue().device
    identity = runtime.binary_identity(device, ["-DTDSL_WG=256", "-w"])
    assert device.driver_version in identity and device.platform.name in identity
    assert "-DTDSL_WG=256 -w" in identity
    assert runtime.binary_identity(device, ["-DTDSL_WG=128", "-w"]) != identity


def test_binaries_are_not_kept_for_a_driver_that_caches_builds(opencl, monkeypatch):
    from tdsl.codegen import cache
    monkeypatch.delenv("TDSL_OPENCL_BINARIES", raising=False)
    results(load(program(7)))
    assert not stored(cache.cache_dir())


# -- fewer kernels to compile ---------------------------------------------------------------------

SHARED = """fn dense(x: f32[n, i], w: f32[i, o], b: f32[o]) -> f32[n, o] { return x @ w + b }
fn forward(a: f32[n, d], w: f32[d, h], c: f32[h]) -> f32[n, h] { return relu(dense(a, w, c)) }
fn both(x: f32[n, d], w: f32[d, h], b: f32[h]) -> f32[n, h] { return forward(x, w, b) * 2.0 }
fn other(x: f32[n, d], w: f32[h, d]) -> f32[n, h] { return x @ transpose(w) }
"""


def test_a_kernel_another_function_holds_is_written_once(opencl):
    from conftest import run_both
    module = tdsl.compile(SHARED, target="opencl")
    source = tdsl.Module.source(module)
    # forward's matmul is dense's with other names (d, h for i, o), and `both` holds it too,
    # lowered into it (its other kernel fuses the * 2.0): written once, launched under dense's
    # name with each function's own arguments
    kernels = source.count("__kernel void")
    shared = source.count("the same kernel as")
    assert shared == 2 and kernels + shared == sum(len(f.plan["launches"]) for f in functions(module))
    assert "__kernel void k0_dense(" in source and "__kernel void k0_forward(" not in source
    assert "/* k0_forward: the same kernel as k0_dense, which runs in its place */" in source
    assert "/* k0_both: the same kernel as k0_dense, which runs in its place */" in source
    assert [l["kernel"] for l in functions(module)[2].plan["launches"]] == ["k0_dense", "k1_both"]
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((7, 5), (5, 3), (3,)))
    for name in ("dense", "forward", "both"):
        run_both(SHARED, name, "opencl", x, w, b)
    run_both(SHARED, "other", "opencl", x, w.T.copy())   # a matmul of another layout: its own kernel
    assert "__kernel void k0_other(" in source


def functions(module) -> list:
    return [getattr(module, name)._runner.function for name in ("dense", "forward", "both", "other")]
