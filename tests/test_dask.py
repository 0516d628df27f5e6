"""Compiled functions on Dask arrays (docs/dask.md): the split of each kind of value, compared with
the unchunked call, on the threaded scheduler and on a two-process LocalCluster."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import tdsl
from tests.conftest import require_module

dask = require_module("dask")
da = require_module("dask.array")
distributed = require_module("distributed")

from tdsl import chunked, daskarray, dasktasks
from tdsl.errors import TdslArgumentError, TdslRuntimeError, TdslWarning

SOURCE = """\
fn elementwise(x: f32[n, d], b: f32[d]) -> f32[n, d] {
    return exp(x) * 2.0 + b
}

fn rows(x: f64[n, d]) -> (f64[n, d], f64[n]) {
    s = softmax(x, axis=1)
    return s, logsumexp(x, axis=1)
}

fn reductions(x: f64[n, d]) -> (f64[d], f64[d], f64[d], f64[d], f64[d], i64[d], i64[d], f64, f64[d], f64[d], f64[d, d]) {
    return sum(x, axis=0), mean(x, axis=0), prod(x, axis=0), max(x, axis=0), min(x, axis=0), argmax(x, axis=0), argmin(x, axis=0), logsumexp(x), var(x, axis=0), std(x, axis=0), x.T @ x
}

fn fused(x: f64[n, d]) -> (f64[d], f64[d], f64, f64[n, d]) {
    return var(x, axis=0), logsumexp(x, axis=0), std(x), softmax(x, axis=0)
}

fn lookalikes(x: f64[n, d]) -> (f64[d], f64[1, d]) {
    m = max(x, axis=0, keepdims=true)
    return sum(square(x - sum(x, axis=0, keepdims=true) / 7.0), axis=0), sum(exp(x - where(isfinite(m), m, 1.0)), axis=0, keepdims=true)
}

fn strided(x: f64[n, k]) -> f64[1, (k + 1) // 2] {
    return sum(x[:, ::2], axis=0, keepdims=true)
}

fn clash(chunk0: f64[n], finalize0: f64) -> f64 {
    combine0 = chunk0 * finalize0
    return sum(combine0)
}

fn counts(k: i32[n], flags: bool[n]) -> (i64, i32, i32, bool, bool, i64, i64) {
    return sum(k), max(k), min(k), any(flags), all(flags), argmax(k), argmin(k)
}

fn centered(x: f64[n, d]) -> f64[n, d] {
    return (x - mean(x, axis=0)) / std(x, axis=0)
}

fn staged(x: f64[n]) -> f64 {
    a = sum(x)
    c = x - mean(x)
    return sum(c * c) + a
}

fn passing(x: f32[n], table: f32[v, d], idx: i64[n]) -> (f32[n], i64, f32[3], f32[n, d]) {
    return x, n, zeros(3, dtype=f32) + 1.0, take(table, idx)
}

fn looped(x: f64[n]) -> f64 {
    s = sum(x)
    for i in range(3) {
        s = s * 2.0
    }
    return s
}

fn positions(x: f64[n]) -> (f64[n], f64) {
    i = f64(arange(n))
    return x * i, sum(x * i) / n
}

fn loss(x: f64[n, d], y: f64[n], w: f64[d], b: f64) -> f64 {
    p = sigmoid(x @ w + b)
    return -mean(y * log(p + 1e-7) + (1 - y) * log(1 - p + 1e-7))
}

fn train_step(x: f64[n, d], y: f64[n], w: f64[d], b: f64, lr: f64) -> (f64[d], f64, f64) {
    gw, gb = grad(loss(x, y, w, b), w, b)
    return w - lr * gw, b - lr * gb, loss(x, y, w, b)
}

fn running(x: f64[n]) -> f64[n] {
    c = cumsum(x)
    return c * 2.0
}

fn shifted(x: f64[n]) -> f64[n - 1] {
    return x[1:] - x[:-1]
}
"""


CUMSUM_LINE = SOURCE.splitlines().index("    c = cumsum(x)") + 1
SLICE_LINE = SOURCE.splitlines().index("    return x[1:] - x[:-1]") + 1


@pytest.fixture(scope="module")
def numpy_module():
    return tdsl.compile(SOURCE, target="numpy")


@pytest.fixture(scope="module")
def c_module():
    return tdsl.compile(SOURCE, target="c")


def call(f, *args, **kwargs):
    """The Dask call of `f`: a Function called with a Dask argument dispatches to tdsl.daskarray."""
    return f(*args, **kwargs)


def data(seed=0, n=11, d=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, 2, n).astype(np.float64)


def compare(got, want, exact=False):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert isinstance(g, da.Array)
        value = g.compute(scheduler="threads")
        assert np.asarray(value).dtype == np.asarray(w).dtype and np.shape(value) == np.shape(w)
        if exact:
            np.testing.assert_array_equal(value, w)
        else:   # sums over chunks add in another order: last bits differ
            np.testing.assert_allclose(value, w, rtol=1e-12, atol=1e-12)


def test_tdsl_never_imports_dask():
    import subprocess
    import sys
    code = ("import sys, numpy, tdsl, tdsl.daskarray, tdsl.chunked; "
            "m = tdsl.compile('fn f(x: f64[n]) -> f64 { return sum(x) }', target='numpy'); m.f(numpy.ones(3)); "
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('dask', 'distributed')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_no_dask_argument_is_not_this_call(numpy_module):
    x = np.ones((3, 2), np.float32)
    assert daskarray.maybe_call(numpy_module.elementwise, (x, np.ones(2, np.float32)), {}) is NotImplemented


def test_elementwise_blockwise_and_exact(numpy_module):
    x = np.random.default_rng(1).standard_normal((10, 4)).astype(np.float32)
    b = np.arange(4, dtype=np.float32)
    out = call(numpy_module.elementwise, da.from_array(x, chunks=(4, 4)), b)   # an uneven last chunk
    assert out.chunks == ((4, 4, 2), (4,)) and out.dtype == np.float32
    compare(out, numpy_module.elementwise(x, b), exact=True)


def test_rowwise_softmax_one_pass(numpy_module):
    x, _ = data(2)
    out = call(numpy_module.rows, da.from_array(x, chunks=(3, 3)))
    assert out[0].chunks[0] == (3, 3, 3, 2)
    compare(out, numpy_module.rows(x), exact=True)
    assert "1 pass over the chunks" in daskarray.explain(numpy_module.rows, {"n": 3})


@pytest.mark.parametrize("chunks", [(4, 3), (1, 3), (11, 3)])
def test_reductions_of_every_kind(numpy_module, chunks):
    x, _ = data(3)
    x[5, 1] = x[1, 1] = x.max() + 1   # a tie across chunks: the first index wins
    compare(call(numpy_module.reductions, da.from_array(x, chunks=chunks)), numpy_module.reductions(x))
    exact = call(numpy_module.reductions, da.from_array(x, chunks=chunks))
    for k in (3, 4, 5, 6):   # max, min, argmax, argmin: exact
        np.testing.assert_array_equal(exact[k].compute(), numpy_module.reductions(x)[k])


def test_var_and_logsumexp_in_one_pass(numpy_module):
    x, _ = data(11, n=13)
    x[:, 1] += 1e3   # far from 0: a one-pass sum of squares would lose every digit
    compare(call(numpy_module.fused, da.from_array(x, chunks=(4, 3))), numpy_module.fused(x))
    text = daskarray.explain(numpy_module.fused, {"n": 4})
    assert "n chunked: 2 passes" in text   # softmax along n reads its sum back: the only second pass
    assert "result 0: f64[d]     global, from moments (var) over n; after pass 0" in text
    assert "result 1: f64[d]     global, from sum of exp (logsumexp) over n, max over n; after pass 0" in text


@pytest.mark.parametrize("special", [np.inf, -np.inf, np.nan])
def test_logsumexp_with_infinities_and_nan(numpy_module, special):
    x, _ = data(12)
    x[:4, 0] = -np.inf     # a chunk of -inf only
    x[6, 0] = special
    x[9, 2] = special
    with np.errstate(all="ignore"):
        compare(call(numpy_module.fused, da.from_array(x, chunks=(4, 3))), numpy_module.fused(x))


def test_only_var_and_logsumexp_are_fused(numpy_module):
    x, _ = data(13, n=10)
    compare(call(numpy_module.lookalikes, da.from_array(x, chunks=(3, 3))), numpy_module.lookalikes(x))
    assert "sum over n: a partial per chunk" in daskarray.explain(numpy_module.lookalikes, "n")


def test_partials_with_dim_expressions(numpy_module):
    x = np.arange(35.0).reshape(7, 5)
    compare(call(numpy_module.strided, da.from_array(x, chunks=(3, 5))), numpy_module.strided(x))


def test_generated_names_differ_from_the_users(numpy_module):
    x = np.arange(5.0)
    compare(call(numpy_module.clash, da.from_array(x, chunks=2), 2.0), numpy_module.clash(x, 2.0))


def test_integer_and_bool_reductions_exact(numpy_module):
    k = np.array([3, -1, 7, 7, 0, -5, 7, -5, 2], np.int32)
    flags = k > 0
    got = call(numpy_module.counts, da.from_array(k, chunks=2), da.from_array(flags, chunks=2))
    compare(got, numpy_module.counts(k, flags), exact=True)
    assert got[5].compute() == 2 and got[6].compute() == 5


def test_argmax_nan_first_wins(numpy_module):
    x, _ = data(4)
    x[7, 0] = x[9, 0] = np.nan
    got = call(numpy_module.reductions, da.from_array(x, chunks=(4, 3)))
    assert got[5].compute()[0] == 7 and np.isnan(got[3].compute()[0])


def test_two_passes_global_back_to_chunks(numpy_module):
    x, _ = data(5)
    compare(call(numpy_module.centered, da.from_array(x, chunks=(4, 3))), numpy_module.centered(x))
    assert "2 passes" in daskarray.explain(numpy_module.centered, {"n": 4})   # mean and var, then divide


def test_global_of_an_early_pass_read_by_a_later_finalize(numpy_module):
    x = np.linspace(-1, 2, 10)
    compare(call(numpy_module.staged, da.from_array(x, chunks=3)), numpy_module.staged(x))


def test_empty_chunks_are_dropped(numpy_module):
    x = np.arange(9.0)[:, None] * np.ones((1, 3))
    compare(call(numpy_module.reductions, da.from_array(x, chunks=((2, 0, 2, 5), (3,)))), numpy_module.reductions(x))


def test_parameters_sizes_whole_values_and_gathers(numpy_module):
    x, table, idx = np.arange(10, dtype=np.float32), np.arange(12, dtype=np.float32).reshape(4, 3), np.arange(10) % 4
    got = call(numpy_module.passing, da.from_array(x, chunks=3), table, da.from_array(idx, chunks=3))
    assert got[3].chunks == ((3, 3, 3, 1), (3,))
    compare(got, numpy_module.passing(x, table, idx), exact=True)


def test_loop_over_a_global_runs_once(numpy_module):
    x = np.linspace(0, 1, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compare(call(numpy_module.looped, da.from_array(x, chunks=3)), numpy_module.looped(x))


def test_arange_and_size_are_global(numpy_module):
    x = np.linspace(0, 1, 9)
    compare(call(numpy_module.positions, da.from_array(x, chunks=4)), numpy_module.positions(x))


def test_loss_and_gradient_over_chunked_batch(numpy_module):
    x, y = data(6, n=13)
    w, b = np.array([0.1, -0.2, 0.3]), 0.05
    got = call(numpy_module.train_step, da.from_array(x, chunks=(5, 3)), da.from_array(y, chunks=5), w, b, 0.5)
    compare(got, numpy_module.train_step(x, y, w, b, 0.5))
    assert "matmul over n" in daskarray.explain(numpy_module.train_step, {"n": 5})


def test_each_function_is_in_the_graph_once(numpy_module):
    x, y = data(6, n=13)
    got = call(numpy_module.train_step, da.from_array(x, chunks=(2, 3)), da.from_array(y, chunks=2), np.ones(3), 0.0, 0.5)
    functions = [v for v in dict(got[0].__dask_graph__()).values() if isinstance(v, daskarray.StageFunction)]
    assert sorted(f.name for f in functions) == ["chunk0", "combine0", "finalize0"]   # 7 chunks, 3 functions


def test_misaligned_and_numpy_arguments_are_cut_like_the_first(numpy_module):
    x, y = data(7, n=13)
    w, b = np.array([0.1, -0.2, 0.3]), 0.05
    want = numpy_module.train_step(x, y, w, b, 0.5)
    compare(call(numpy_module.train_step, da.from_array(x, chunks=(5, 3)), da.from_array(y, chunks=4), w, b, 0.5), want)
    compare(call(numpy_module.train_step, da.from_array(x, chunks=(5, 1)), y, w, b, 0.5), want)   # blocks of n x d


def test_unsplittable_rechunks_with_warning_naming_the_line(numpy_module):
    x = np.arange(10.0)
    with pytest.warns(TdslWarning, match=rf"running\(\) cannot run chunk by chunk along n: <string>:{CUMSUM_LINE}: "
                                         r"cumsum along n .*rechunking n to one chunk"):
        out = call(numpy_module.running, da.from_array(x, chunks=3))
    assert out.chunks == ((10,),)
    compare(out, numpy_module.running(x), exact=True)
    with pytest.warns(TdslWarning, match=rf"<string>:{SLICE_LINE}: a slice along n") as caught:
        compare(call(numpy_module.shifted, da.from_array(x, chunks=3)), numpy_module.shifted(x), exact=True)
    assert caught[0].filename == __file__   # the caller's line, not tdsl's


def test_strict_raises_naming_the_line(numpy_module):
    x = da.from_array(np.arange(10.0), chunks=3)
    with dask.config.set({"tdsl.strict": True}):
        with pytest.raises(TdslArgumentError) as err:
            call(numpy_module.running, x)
    assert err.value.loc.line == CUMSUM_LINE and "cumsum along n" in str(err.value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # one chunk: nothing to split, no warning
        compare(call(numpy_module.running, da.from_array(np.arange(10.0), chunks=10)),
                numpy_module.running(np.arange(10.0)), exact=True)


def test_arguments_checked_at_the_call(numpy_module):
    x = da.from_array(np.ones((4, 3)), chunks=2)
    with pytest.raises(TdslArgumentError, match="argument 'x' of elementwise\\(\\) is float64, which cannot be cast"):
        call(numpy_module.elementwise, x, np.ones(3, np.float32))
    with pytest.raises(TdslArgumentError, match="d = 3 from x, but b has 2"):
        call(numpy_module.elementwise, x.astype(np.float32), np.ones(2, np.float32))


def test_explain_lines(numpy_module):
    text = daskarray.explain(numpy_module.centered, {"n": 100})
    assert text.splitlines()[1:] == [
        "  n chunked: 2 passes over the chunks",
        "  param  x: f64[n, d]  chunks along n (axis 0)",
        "  result 0: f64[n, d]  blockwise along n (axis 0), pass 1",
    ]
    assert f"cannot run chunk by chunk: <string>:{CUMSUM_LINE}: cumsum along n" in daskarray.explain(numpy_module.running, "n")


def test_stage_functions_pickle_as_source(numpy_module):
    plan = daskarray.split_of(numpy_module.centered, "n")
    stage = daskarray.StageFunction(plan.text, "numpy", plan.passes[0].chunk.name)
    again = pickle.loads(pickle.dumps(stage))
    assert again.text == plan.text and b"numpy" in pickle.dumps(stage)
    rebuild, args = dasktasks.reduce_function(numpy_module.centered)
    x, _ = data(8)
    np.testing.assert_array_equal(rebuild(*args)(x), numpy_module.centered(x))


def test_a_function_pickles_as_its_source_and_explains_its_split(numpy_module, c_module, tmp_path, capsys):
    for module in (numpy_module, c_module):
        data_ = pickle.dumps(module.centered)
        assert b"\x7fELF" not in data_ and b"centered" in data_   # its source, never a library
        again = pickle.loads(data_)
        x, _ = data(8)
        np.testing.assert_array_equal(again(x), module.centered(x))
        assert again.target == module.centered.target
    assert numpy_module.centered.explain(chunks={"n": 100}) == daskarray.explain(numpy_module.centered, {"n": 100})
    path = tmp_path / "split.tdsl"
    path.write_text(SOURCE)
    from tdsl import cli
    assert cli.main(["graph", str(path), "--fn", "centered", "--chunks", "n"]) == 0
    assert "n chunked: 2 passes over the chunks" in capsys.readouterr().out


LAZY = """\
fn pick(t: f64[k], j: i64) -> f64 {
    s = t * 2.0
    return s[j] + 1.0
}
"""


@pytest.fixture(scope="module")
def lazy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lazy") / "lazy.tdsl"
    path.write_text(LAZY)
    return path


def test_an_unpickled_function_compiles_on_first_use_and_names_the_users_lines(lazy_file):
    f = tdsl.load(lazy_file, target="numpy").pick
    pickled = pickle.dumps(f)
    again = pickle.loads(pickled)
    key = (again._recipe[1][0], "numpy")   # the text it compiles, and its target
    assert key not in dasktasks._MODULES and "compiled on first use" in repr(again)
    assert pickle.dumps(again) == pickled and (again.name, again.target) == ("pick", "numpy")
    assert key not in dasktasks._MODULES   # passed on as it came (a scheduler), not compiled
    t = np.arange(4.0)
    assert again(t, 3) == f(t, 3) == 7.0 and key in dasktasks._MODULES
    assert again.signature == f.signature and pickle.dumps(again) == pickled
    with pytest.raises(TdslRuntimeError) as err:
        again(t, 9)
    assert str(err.value.loc) == f"{lazy_file}:3:12" and err.value.loc.source_line == LAZY.splitlines()[2]
    assert (err.value.value, err.value.length) == (9, 4) and "<tdsl-dask>" not in str(err.value)
    assert str(err.value).splitlines()[0].endswith(f"(s at {lazy_file}:3:12)")
    guarded = pickle.loads(pickle.dumps(f._variant(True)))   # a guarded build stays guarded
    assert guarded.guarded and guarded(t, 1) == 3.0


def test_split_graphs_parse_back(numpy_module):
    plan = chunked.split(numpy_module.train_step.graph, "n")
    assert [g.name for g in plan.graphs] == ["chunk0", "combine0", "finalize0"]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as local, distributed.Client(local) as client:
        yield client


@pytest.mark.slow   # a two-process cluster and a compile: several seconds
def test_c_target_threads_and_cluster(c_module, cluster):
    x, y = data(9, n=13)
    w, b = np.array([0.1, -0.2, 0.3]), 0.05
    want = c_module.train_step(x, y, w, b, 0.5)
    got = call(c_module.train_step, da.from_array(x, chunks=(4, 3)), da.from_array(y, chunks=4), w, b, 0.5)
    on_cluster = dask.compute(*got)   # the client is the default scheduler
    for g, v in zip(on_cluster, want):
        np.testing.assert_allclose(g, v, rtol=1e-12)
    compare(got, want)
    xs = da.from_array(data(10)[0], chunks=(4, 3))
    np.testing.assert_allclose(call(c_module.centered, xs).compute(), c_module.centered(xs.compute()), rtol=1e-12)
    compare(call(c_module.reductions, xs), c_module.reductions(xs.compute()))
    blocks = c_module.centered(xs.rechunk((4, 1)))   # blocks of n x d on the workers
    assert blocks.chunks == ((4, 4, 3), (1, 1, 1))
    np.testing.assert_allclose(blocks.compute(), c_module.centered(xs.compute()), rtol=1e-12)


def test_tasks_call_the_fast_path(c_module, monkeypatch):
    """Whole scalars reach the tasks as NumPy scalars (not 0-d arrays): each chunk's call takes the
    compiled fast path, which reuses the results a previous computation dropped."""
    from tdsl.compiled import Function
    slow = []
    checked = Function._checked_call
    monkeypatch.setattr(Function, "_checked_call", lambda self, *a, **k: (slow.append(self.name), checked(self, *a, **k))[1])
    x, y = data(9, n=13)
    got = call(c_module.train_step, da.from_array(x, chunks=(4, 3)), da.from_array(y, chunks=4),
               np.array([0.1, -0.2, 0.3]), 0.05, 0.5)
    compare(got, c_module.train_step(x, y, np.array([0.1, -0.2, 0.3]), 0.05, 0.5))
    assert [name for name in slow if name != "train_step"] == []   # no task converted its arguments


@pytest.mark.slow   # a task on the cluster of the test above
def test_a_function_sent_to_a_worker_names_the_users_lines(lazy_file, cluster):
    f = tdsl.load(lazy_file, target="numpy").pick
    t = np.arange(4.0)
    assert cluster.submit(lambda g, v: g(v, 2), f, t).result() == 5.0
    with pytest.raises(TdslRuntimeError) as err:
        cluster.submit(lambda g, v: g(v, 9), f, t).result()
    assert str(err.value.loc) == f"{lazy_file}:3:12" and "<tdsl-dask>" not in str(err.value)
    back = cluster.submit(lambda g: g, f).result()   # never called there: it comes back as it went
    assert pickle.dumps(back) == pickle.dumps(f) and back(t, 0) == 1.0


def test_docs_explain_output_is_real():
    """docs/dask.md shows explain(chunks=...) of its ```tdsl block: that output, exactly."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "docs" / "dask.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    source = next(body for kind, body in blocks if kind == "tdsl" and "fn train_step(" in body)
    shown = next(body for kind, body in blocks if kind == "text" and body.startswith("train_step("))
    m = tdsl.compile(source, target="numpy")
    printed = [daskarray.explain(m.train_step, {"n": 100_000}),
               daskarray.explain(m.standardize, {"n": 100_000}), daskarray.explain(m.ranks, {"n": 100_000}),
               daskarray.explain(m.standardize, {"d": 100})]
    assert shown == "\n\n".join(printed) + "\n"


def test_docs_loops_and_blocks_output_is_real(tmp_path):
    """docs/dask.md's explain of a loop that splits and one that does not, the warning of the
    second, and explain of blocks of n x d: each the real output."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "docs" / "dask.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    sources = [next(body for kind, body in blocks if kind == "tdsl" and f"fn {name}(" in body)
               for name in ("train_step", "record")]
    shown = [body for kind, body in blocks if kind == "text"]
    loops = tdsl.compile(sources[1], target="numpy")
    printed = "\n\n".join([daskarray.explain(loops.record, {"n": 100_000}),
                            daskarray.explain(loops.descent, {"n": 100_000})]) + "\n"
    assert printed in shown
    assert tdsl.compile(sources[0], target="numpy").standardize.explain(chunks={"n": 100_000, "d": 100}) + "\n" \
        in shown
    path = tmp_path / "loops.tdsl"
    path.write_text(sources[1])
    x = da.from_array(np.ones((10, 4), np.float32), chunks=(5, 4))
    with pytest.warns(TdslWarning) as caught:
        tdsl.load(path, target="numpy").descent(x, x[:, 0], np.zeros(4, np.float32), np.float32(0.1), 3)
    warning = f"TdslWarning: {caught[0].message}".replace(str(path), "loops.tdsl") + "\n"
    assert warning in shown
