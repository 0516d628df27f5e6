"""Convolutions and pooling (LANGUAGE.md section 12, lang/nn.py) on every target, against NumPy
references written here: forward values, gradients in x and w, dtypes, errors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tdsl
from conftest import assert_same, compiled, require_target, run
from tdsl.pipeline import check_source

# -- NumPy references ----------------------------------------------------------------------------


def pad2(x, pads):
    """Zeros before and after each spatial axis: pads = ((top, bottom), (left, right))."""
    return np.pad(x, ((0, 0), (0, 0)) + tuple(pads))


def same_pads(kernel):
    return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)


def windows(xp, kernel, stride):
    """[b, c, oh, ow, kh, kw]: each output position's window of the padded input."""
    view = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(2, 3))
    return view[:, :, ::stride, ::stride]


def conv2d_ref(x, w, stride=1, pads=((0, 0), (0, 0))):
    xp = pad2(x, pads)
    return np.einsum("bchwij,ocij->bohw", windows(xp, w.shape[2:], stride), w)


def conv2d_grads_ref(x, w, g, stride=1, pads=((0, 0), (0, 0))):
    """d sum(conv2d(x, w) * g) / dx and / dw, by adding each kernel offset's part."""
    xp = pad2(x, pads)
    kh, kw = w.shape[2:]
    oh, ow = g.shape[2:]
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    for i in range(kh):
        for j in range(kw):
            rows, cols = slice(i, i + stride * (oh - 1) + 1, stride), slice(j, j + stride * (ow - 1) + 1, stride)
            gxp[:, :, rows, cols] += np.einsum("bohw,oc->bchw", g, w[:, :, i, j])
            gw[:, :, i, j] = np.einsum("bohw,bchw->oc", g, xp[:, :, rows, cols])
    (top, _), (left, _) = pads
    return gxp[:, :, top:top + x.shape[2], left:left + x.shape[3]], gw


def conv1d_ref(x, w, stride=1, pads=(0, 0)):
    y = conv2d_ref(x[:, :, None, :], w[:, :, None, :], stride, ((0, 0), pads))
    return y[:, :, 0, :]


def pool_ref(x, size, stride, reduce):
    return reduce(windows(x, (size, size), stride), axis=(4, 5))


def max_pool_grad_ref(x, size, stride, g):
    """Each window's adjoint shared equally among its elements equal to the window's maximum."""
    gx = np.zeros_like(x)
    oh, ow = g.shape[2:]
    for r in range(oh):
        for c in range(ow):
            win = x[:, :, r * stride:r * stride + size, c * stride:c * stride + size]
            hit = win == win.max(axis=(2, 3), keepdims=True)
            gx[:, :, r * stride:r * stride + size, c * stride:c * stride + size] += \
                hit * (g[:, :, r, c] / hit.sum(axis=(2, 3)))[:, :, None, None]
    return gx


def avg_pool_grad_ref(x, size, stride, g):
    gx = np.zeros_like(x)
    oh, ow = g.shape[2:]
    for r in range(oh):
        for c in range(ow):
            gx[:, :, r * stride:r * stride + size, c * stride:c * stride + size] += \
                (g[:, :, r, c] / size**2)[:, :, None, None]
    return gx


def rand(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- convolutions: values and dtypes ---------------------------------------------------------------

CONV = """
fn c2(x: f64[b, c, h, w], k: f64[o, c, 3, 3]) { return conv2d(x, k) }
fn c2_p1(x: f64[b, c, h, w], k: f64[o, c, 3, 3]) -> f64[b, o, h, w] { return conv2d(x, k, padding=1) }
fn c2_s2(x: f64[b, c, h, w], k: f64[o, c, 3, 3]) -> f64[b, o, (h - 3) // 2 + 1, (w - 3) // 2 + 1] {
    return conv2d(x, k, 2)
}
fn c2_s2p1(x: f64[b, c, h, w], k: f64[o, c, 3, 3]) { return conv2d(x, k, stride=2, padding=1) }
fn c2_even(x: f64[b, c, h, w], k: f64[o, c, 2, 4]) { return conv2d(x, k, stride=2, padding=1) }
fn c2_1x1(x: f64[b, c, h, w], k: f64[o, c, 1, 1]) { return conv2d(x, k) }
fn c2_f32(x: f32[b, c, h, w], k: f32[o, c, 3, 3]) { return conv2d(x, k, padding=1) }
fn c2_mixed(x: f32[b, c, h, w], k: f64[o, c, 3, 3]) { return conv2d(x, k, padding=1) }
fn c2_i64(x: i64[b, c, h, w], k: i64[o, c, 2, 2]) { return conv2d(x, k, padding=1) }
fn c2_i32f32(x: i32[b, c, h, w], k: f32[o, c, 2, 2]) { return conv2d(x, k) }
fn c2_fixed(x: f64[2, 3, 5, 6], k: f64[4, 3, 3, 3]) -> f64[2, 4, 3, 4] { return conv2d(x, k) }
fn c2_same(x: f64[b, c, h, w], k: f64[o, c, 2, 4]) -> f64[b, o, h, w] { return conv2d(x, k, padding="same") }
fn c2_valid(x: f64[b, c, h, w], k: f64[o, c, 2, 4]) -> f64[b, o, h - 1, w - 3] { return conv2d(x, k, 1, "valid") }
fn c1(x: f64[b, c, n], k: f64[o, c, 3]) { return conv1d(x, k) }
fn c1_same(x: f64[b, c, n], k: f64[o, c, 4]) -> f64[b, o, n] { return conv1d(x, k, padding="same") }
fn c1_s2p1(x: f64[b, c, n], k: f64[o, c, 3]) -> f64[b, o, (n - 1) // 2 + 1] {
    return conv1d(x, k, stride=2, padding=1)
}
fn c1_even(x: f32[b, c, n], k: f32[o, c, 4]) { return conv1d(x, k, padding=2) }
"""

CONV_CASES = [  # function, x shape, kernel shape, stride, padding, dtypes
    ("c2", (2, 3, 7, 9), (4, 3, 3, 3), 1, 0, "f8"),
    ("c2_p1", (2, 3, 7, 9), (4, 3, 3, 3), 1, 1, "f8"),
    ("c2_p1", (1, 1, 3, 3), (1, 1, 3, 3), 1, 1, "f8"),    # batch 1, channels 1, the kernel's size
    ("c2_s2", (3, 2, 8, 7), (5, 2, 3, 3), 2, 0, "f8"),
    ("c2_s2p1", (2, 3, 7, 10), (4, 3, 3, 3), 2, 1, "f8"),
    ("c2_even", (2, 3, 7, 9), (4, 3, 2, 4), 2, 1, "f8"),
    ("c2_1x1", (2, 5, 4, 3), (6, 5, 1, 1), 1, 0, "f8"),
    ("c2_f32", (2, 3, 6, 5), (4, 3, 3, 3), 1, 1, "f4"),
    ("c2_fixed", (2, 3, 5, 6), (4, 3, 3, 3), 1, 0, "f8"),
    ("c2_same", (2, 3, 5, 6), (4, 3, 2, 4), 1, "same", "f8"),   # the extra zero goes after
    ("c2_same", (1, 1, 1, 1), (2, 1, 2, 4), 1, "same", "f8"),
    ("c2_valid", (2, 3, 5, 6), (4, 3, 2, 4), 1, 0, "f8"),
]


@pytest.mark.parametrize("fn,xshape,kshape,stride,padding,dtype", CONV_CASES)
def test_conv2d(target, fn, xshape, kshape, stride, padding, dtype):
    x, k = rand(xshape, dtype), rand(kshape, dtype, seed=1)
    got = run(CONV, fn, target, x, k)
    pads = same_pads(kshape[2:]) if padding == "same" else ((padding, padding),) * 2
    expected = conv2d_ref(x, k, stride, pads).astype(dtype)
    assert_same(got, expected, rtol=1e-4 if dtype == "f4" else 1e-10, atol=1e-5 if dtype == "f4" else 1e-12)


def test_conv2d_dtypes(target):
    """The result dtype is the promotion of x's and w's, as NumPy's products; integers stay exact."""
    x, k = rand((2, 3, 5, 4), np.float32), rand((4, 3, 3, 3), seed=1)
    assert_same(run(CONV, "c2_mixed", target, x, k), conv2d_ref(x.astype(np.float64), k, 1, ((1, 1), (1, 1))))
    xi = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5) - 50
    ki = np.arange(4 * 3 * 2 * 2).reshape(4, 3, 2, 2) % 7 - 3
    assert_same(run(CONV, "c2_i64", target, xi, ki), conv2d_ref(xi, ki, 1, ((1, 1), (1, 1))))
    x32 = xi.astype(np.int32)
    got = run(CONV, "c2_i32f32", target, x32, ki.astype(np.float32))
    assert_same(got, conv2d_ref(x32.astype(np.float64), ki.astype(np.float64)))


def test_conv2d_non_contiguous(target):
    base, kbase = rand((2, 3, 14, 11)), rand((3, 3, 4, 5), seed=1)
    x = base[:, :, ::2, 1:]                    # stepped and offset
    k = kbase.transpose(1, 0, 2, 3)[:, :, :3, 1:4]   # transposed and sliced
    assert not x.flags.c_contiguous and not k.flags.c_contiguous
    assert_same(run(CONV, "c2_s2p1", target, x, k), conv2d_ref(x, k, 2, ((1, 1), (1, 1))), rtol=1e-10)


@pytest.mark.parametrize("fn,xshape,kshape,stride,padding", [
    ("c1", (2, 3, 9), (4, 3, 3), 1, 0), ("c1_s2p1", (2, 3, 10), (4, 3, 3), 2, 1),
    ("c1_s2p1", (1, 1, 1), (1, 1, 3), 2, 1), ("c1_even", (3, 2, 7), (5, 2, 4), 1, 2),
    ("c1_same", (2, 3, 6), (4, 3, 4), 1, "same")])
def test_conv1d(target, fn, xshape, kshape, stride, padding):
    dtype = np.float32 if fn == "c1_even" else np.float64
    x, k = rand(xshape, dtype), rand(kshape, dtype, seed=1)
    pads = same_pads(kshape[2:])[0] if padding == "same" else (padding, padding)
    expected = conv1d_ref(x, k, stride, pads).astype(dtype)
    assert_same(run(CONV, fn, target, x, k), expected, rtol=1e-4 if dtype == np.float32 else 1e-10)


def test_conv2d_nan_and_empty_batch(target):
    x, k = rand((2, 3, 6, 6)), rand((4, 3, 3, 3), seed=1)
    x[1, 2, 3, 3] = np.nan
    got = run(CONV, "c2_p1", target, x, k)
    assert_same(got, conv2d_ref(x, k, 1, ((1, 1), (1, 1))))
    assert np.isnan(got[1, :, 2:5, 2:5]).all() and not np.isnan(got[0]).any()
    assert run(CONV, "c2_p1", target, x[:0], k).shape == (0, 4, 6, 6)


def test_conv2d_kernel_larger_than_input_at_call_time(target):
    """With sizes known only at call time, the window must fit the padded input then."""
    require_target(target)
    fn = getattr(compiled(CONV, target), "c2")
    with pytest.raises(tdsl.TdslError, match=r"conv2d: the window \(3\) is larger than the \(padded\) input"):
        fn(rand((1, 1, 2, 5)), rand((1, 1, 3, 3)))


def test_torch_agrees():
    """torch.nn.functional.conv2d (bias=False) and max_pool2d, where torch is installed."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, k = rand((2, 3, 7, 9)), rand((4, 3, 3, 3), seed=1)
    m = compiled(CONV, "numpy")
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(k), stride=2, padding=1).numpy()
    assert_same(m.c2_s2p1(x, k), expected, rtol=1e-10)
    pools = compiled(POOL, "numpy")
    assert_same(pools.mp3s2(x), F.max_pool2d(torch.from_numpy(x), 3, stride=2).numpy())


# -- convolutions: gradients ----------------------------------------------------------------------

CONV_GRAD = """
fn g2(x: f64[b, c, h, w], k: f64[o, c, 3, 3]) {
    y = conv2d(x, k, stride=2, padding=1)
    return grad(sum(square(y)) / 2, x, k)
}
fn g2_even(x: f64[b, c, h, w], k: f64[o, c, 2, 4]) {
    y = conv2d(x, k, padding=1)
    return grad(sum(square(y)) / 2, x, k)
}
fn g2_f32(x: f32[b, c, h, w], k: f32[o, c, 3, 3]) {
    y = conv2d(x, k, padding=1)
    return grad(sum(square(y)) / 2, x, k)
}
fn g1(x: f64[b, c, n], k: f64[o, c, 3]) {
    y = conv1d(x, k, stride=2, padding=1)
    return grad(sum(square(y)) / 2, x, k)
}
fn g2_same(x: f64[b, c, h, w], k: f64[o, c, 3, 2]) {
    y = conv2d(x, k, padding="same")
    return grad(sum(square(y)) / 2, x, k)
}
fn loss(x: f64[b, c, h, w], k: f64[o, c, 3, 2]) -> f64 { return sum(sin(conv2d(x, k, stride=2, padding=1))) }
fn second(x: f64[b, c, h, w], k: f64[o, c, 3, 2]) -> f64 {
    gk = grad(loss(x, k), k)
    return sum(square(gk)) + sum(square(grad(sum(sin(max_pool2d(x, 3, stride=2))), x)))
}
"""


@pytest.mark.parametrize("fn,xshape,kshape,stride,padding,dtype", [
    ("g2", (2, 3, 7, 9), (4, 3, 3, 3), 2, 1, "f8"), ("g2", (1, 1, 4, 4), (1, 1, 3, 3), 2, 1, "f8"),
    ("g2_even", (2, 3, 5, 6), (4, 3, 2, 4), 1, 1, "f8"), ("g2_f32", (2, 3, 6, 5), (4, 3, 3, 3), 1, 1, "f4"),
    ("g2_same", (2, 3, 5, 6), (4, 3, 3, 2), 1, "same", "f8")])
def test_conv2d_grad(target, fn, xshape, kshape, stride, padding, dtype):
    """The gradient of sum(y**2)/2 is the convolution's adjoint applied to y."""
    x, k = rand(xshape, dtype), rand(kshape, dtype, seed=1)
    pads = same_pads(kshape[2:]) if padding == "same" else ((padding, padding),) * 2
    y = conv2d_ref(x.astype(np.float64), k.astype(np.float64), stride, pads)
    gx, gk = conv2d_grads_ref(x.astype(np.float64), k.astype(np.float64), y, stride, pads)
    tol = dict(rtol=1e-3, atol=1e-4) if dtype == "f4" else dict(rtol=1e-9, atol=1e-10)
    assert_same(run(CONV_GRAD, fn, target, x, k), (gx.astype(dtype), gk.astype(dtype)), **tol)


def test_conv1d_grad(target):
    x, k = rand((2, 3, 9)), rand((4, 3, 3), seed=1)
    y = conv1d_ref(x, k, 2, (1, 1))
    gx, gk = conv2d_grads_ref(x[:, :, None], k[:, :, None], y[:, :, None], 2, ((0, 0), (1, 1)))
    assert_same(run(CONV_GRAD, "g1", target, x, k), (gx[:, :, 0], gk[:, :, 0]), rtol=1e-9)


def test_conv2d_check_grad(target):
    """Finite differences agree with the compiled gradient (stride 2, padding 1, an even kernel)."""
    require_target(target)
    errors = tdsl.check_grad(compiled(CONV_GRAD, target).loss, rand((2, 2, 5, 6)), rand((3, 2, 3, 2), seed=1))
    assert max(errors.values()) < 1e-6, errors


def test_second_derivatives(target):
    """Gradients of gradients go through the convolution's and the pool's rules too."""
    require_target(target)
    errors = tdsl.check_grad(compiled(CONV_GRAD, target).second, rand((2, 2, 5, 6)), rand((3, 2, 3, 2), seed=1))
    assert max(errors.values()) < 1e-6, errors


# -- padding="same" through the Python builder ------------------------------------------------------

def same_module(target):
    x = tdsl.tensor("x", "f64", ("b", "c", "h", "w"))
    k3, k2 = tdsl.tensor("k3", "f64", ("o", "c", 3, 3)), tdsl.tensor("k2", "f64", ("o", "c", 2, 2))
    k43 = tdsl.tensor("k43", "f64", ("o", "c", 4, 3))
    x1, k4 = tdsl.tensor("x1", "f64", ("b", "c", "n")), tdsl.tensor("k4", "f64", ("o", "c", 4))
    outs = [tdsl.conv2d(x, k, padding="same") for k in (k3, k2, k43)]
    outs.append(tdsl.conv1d(x1, k4, padding="same"))
    outs.extend(tdsl.grad(tdsl.sum(outs[2] * outs[2]) / 2, x, k43))
    return tdsl.function([x, k3, k2, k43, x1, k4], tuple(outs), target=target)


def test_padding_same(target):
    """The output has the input's size; with an even kernel the extra zero goes after."""
    require_target(target)
    x, x1 = rand((2, 3, 5, 6)), rand((2, 3, 7), seed=3)
    k3, k2, k43, k4 = rand((4, 3, 3, 3), seed=1), rand((4, 3, 2, 2), seed=2), rand((4, 3, 4, 3), seed=4), \
        rand((4, 3, 4), seed=5)
    y3, y2, y43, y1, gx, gk = same_module(target)(x, k3, k2, k43, x1, k4)
    assert_same(y3, conv2d_ref(x, k3, 1, same_pads((3, 3))), rtol=1e-10)
    assert_same(y2, conv2d_ref(x, k2, 1, ((0, 1), (0, 1))), rtol=1e-10)
    assert_same(y43, conv2d_ref(x, k43, 1, ((1, 2), (1, 1))), rtol=1e-10)
    assert_same(y1, conv1d_ref(x1, k4, 1, (1, 2)), rtol=1e-10)
    ref_gx, ref_gk = conv2d_grads_ref(x, k43, y43, 1, ((1, 2), (1, 1)))
    assert_same((gx, gk), (ref_gx, ref_gk), rtol=1e-9)


def test_padding_same_shape_and_errors():
    x = tdsl.tensor("x", "f32", ("b", "c", "h", "w"))
    assert tdsl.conv2d(x, tdsl.tensor("k", "f32", ("o", "c", 4, 4)), padding="same").shape == ("b", "o", "h", "w")
    assert tdsl.conv2d(x, tdsl.tensor("k", "f32", ("o", "c", 3, 3)), padding="valid").shape == \
        ("b", "o", "h - 2", "w - 2")
    k = tdsl.tensor("k", "f32", ("o", "c", 3, 3))
    with pytest.raises(tdsl.TdslTypeError, match="padding=\"same\" needs stride 1, not 2"):
        tdsl.conv2d(x, k, stride=2, padding="same")
    with pytest.raises(tdsl.TdslTypeError, match="padding must be an integer, \"same\" or \"valid\""):
        tdsl.conv2d(x, k, padding="full")


# -- errors ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call,message,col", [
    ("conv2d(x, k5)", r"the input has c channels and the kernel d \(f32\[b, c, h, w\] against", 12),
    ("conv2d(x2, k)", r"the window \(3\) is larger than the \(padded\) input \(2\)", 12),
    ("conv2d(x2, k, padding=1)", None, 0),
    ("conv2d(x, k, stride=0)", "the stride must be positive, not 0", 12),
    ("conv2d(x, k, padding=-1)", r"the padding cannot be negative \(-1\)", 12),
    ("conv2d(x, k, stride=s)", "conv2d's stride must be an integer literal", 12),
    ("conv2d(x, k, stride=2, padding=\"same\")", "padding=\"same\" needs stride 1, not 2", 12),
    ("conv2d(x, k, padding=\"full\")", "padding must be an integer, \"same\" or \"valid\", not 'full'", 12),
    ("conv2d(x, k, \"1\")", "conv2d's stride must be an integer literal", 12),
    ("conv2d(x[0], k)", r"conv2d needs the input of rank 4 \(\[batch, channels_in, h, w\]\), not f32\[c, h, w\]", 12),
    ("conv2d(x, k[0])", r"needs the kernel of rank 4 \(\[channels_out, channels_in, kh, kw\]\)", 12),
    ("conv1d(x, k)", r"conv1d needs the input of rank 3", 12),
    ("conv2d(x, kn)", "the kernel's spatial sizes must be literal integers", 12),
    ("conv2d(x > 0, k > 0)", "arithmetic on bool is not allowed", 12),
    ("conv2d(x, k0)", "the kernel cannot be empty", 12),
    ("max_pool2d(x, 0)", "the window size must be positive, not 0", 12),
    ("max_pool2d(x2, 3)", r"max_pool2d: the window \(3\) is larger than the \(padded\) input \(2\)", 12),
    ("avg_pool2d(x, 2, stride=-1)", "the stride must be positive, not -1", 12),
    ("max_pool2d(x[0], 2)", r"max_pool2d needs an input of rank 4", 12),
])
def test_errors(call, message, col):
    source = ("fn f(x: f32[b, c, h, w], x2: f32[b, c, 2, 9], k: f32[o, c, 3, 3], k5: f32[o, d, 3, 3],\n"
              "      kn: f32[o, c, n, 3], k0: f32[o, c, 0, 3], s: i64) {\n"
              f"    return {call}\n}}\n")
    if message is None:   # the padded input is large enough
        check_source(source)
        return
    with pytest.raises(tdsl.TdslTypeError, match=message) as err:
        check_source(source)
    assert (err.value.loc.line, err.value.loc.col) == (3, col)


# -- pooling -------------------------------------------------------------------------------------------

POOL = """
fn mp2(x: f64[b, c, h, w]) -> f64[b, c, (h - 2) // 2 + 1, (w - 2) // 2 + 1] { return max_pool2d(x, 2) }
fn mp3s2(x: f64[b, c, h, w]) { return max_pool2d(x, 3, stride=2) }
fn mp2s1(x: f64[b, c, h, w]) { return max_pool2d(x, 2, 1) }
fn ap2(x: f64[b, c, h, w]) { return avg_pool2d(x, 2) }
fn ap3s2(x: f32[b, c, h, w]) { return avg_pool2d(x, 3, stride=2) }
fn mp_i32(x: i32[b, c, h, w]) { return max_pool2d(x, 2) }
fn ap_i32(x: i32[b, c, h, w]) { return avg_pool2d(x, 2) }
fn ap_bool(x: i32[b, c, h, w]) { return avg_pool2d(x > 0, 2) }
fn mp_bool(x: i32[b, c, h, w]) { return max_pool2d(x > 0, 3, stride=2) }
fn gmp2(x: f64[b, c, h, w]) { return grad(sum(square(max_pool2d(x, 2))) / 2, x) }
fn gmp3s2(x: f64[b, c, h, w]) { return grad(sum(square(max_pool2d(x, 3, stride=2))) / 2, x) }
fn gap3s2(x: f64[b, c, h, w]) { return grad(sum(square(avg_pool2d(x, 3, stride=2))) / 2, x) }
fn gmp_f32(x: f32[b, c, h, w]) { return grad(sum(square(max_pool2d(x, 2))) / 2, x) }
"""

POOL_CASES = [("mp2", 2, 2, np.max), ("mp3s2", 3, 2, np.max), ("mp2s1", 2, 1, np.max),
              ("ap2", 2, 2, np.mean), ("ap3s2", 3, 2, np.mean)]


@pytest.mark.parametrize("fn,size,stride,reduce", POOL_CASES)
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 1, 3, 3), (2, 2, 8, 6)])
def test_pool(target, fn, size, stride, reduce, shape):
    dtype = np.float32 if fn == "ap3s2" else np.float64
    x = rand(shape, dtype)
    assert_same(run(POOL, fn, target, x), pool_ref(x, size, stride, reduce).astype(dtype), rtol=1e-6)


def test_pool_nan_integers_and_non_contiguous(target):
    x = rand((2, 3, 6, 7))
    x[0, 1, 2, 3] = np.nan
    got = run(POOL, "mp2", target, x)
    assert np.isnan(got[0, 1, 1, 1]) and np.isnan(got).sum() == 1
    assert_same(got, pool_ref(x, 2, 2, np.max))
    assert_same(run(POOL, "mp3s2", target, x), pool_ref(x, 3, 2, np.max))
    xi = (np.arange(2 * 3 * 5 * 4).reshape(2, 3, 5, 4) * 7919 % 101 - 50).astype(np.int32)
    assert_same(run(POOL, "mp_i32", target, xi), pool_ref(xi, 2, 2, np.max))
    assert_same(run(POOL, "ap_i32", target, xi), pool_ref(xi, 2, 2, np.mean))
    assert_same(run(POOL, "ap_bool", target, xi), pool_ref(xi > 0, 2, 2, np.mean))
    assert_same(run(POOL, "mp_bool", target, xi), pool_ref(xi > 0, 3, 2, np.max))
    view = rand((3, 2, 9, 16)).transpose(1, 0, 3, 2)[:, :, ::2, 1:]
    assert_same(run(POOL, "mp3s2", target, view), pool_ref(view, 3, 2, np.max))


@pytest.mark.parametrize("fn,size,stride", [("gmp2", 2, 2), ("gmp3s2", 3, 2), ("gap3s2", 3, 2)])
def test_pool_grad(target, fn, size, stride):
    x = rand((2, 3, 7, 8))
    x[0, 0, :3, :3] = 1.5          # ties inside windows, and across overlapping windows
    x[1, 2, 4, 4:] = -0.25
    reduce = np.mean if fn.startswith("gap") else np.max
    g = pool_ref(x, size, stride, reduce)
    ref = (avg_pool_grad_ref if reduce is np.mean else max_pool_grad_ref)(x, size, stride, g)
    assert_same(run(POOL, fn, target, x), ref, rtol=1e-12)


def test_max_pool_grad_shares_ties(target):
    """Unlike PyTorch (one element gets it all), tied maxima share a window's gradient equally."""
    x = np.zeros((1, 1, 2, 4), np.float32)
    x[0, 0, :, 2:] = [[3, 1], [3, 3]]
    got = run(POOL, "gmp_f32", target, x)
    expected = np.array([[[[0, 0, 1, 0], [0, 0, 1, 1]]]], np.float32)   # g = max: 0 and 3
    expected[0, 0, :, :2] = 0.0                                          # a window of zeros: max 0, g 0
    assert_same(got, expected)


@pytest.mark.slow   # a subprocess that compiles and times
def test_conv_benchmark_runs():
    """bench/conv.py checks its implementations agree, then prints their times and the ratio."""
    require_target("c")
    script = Path(__file__).resolve().parent.parent / "bench" / "conv.py"
    out = subprocess.run([sys.executable, str(script), "--batch", "2", "--rounds", "1", "--repeat", "1"],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ), check=True).stdout
    assert "tdsl c" in out and "numpy" in out and "NumPy / tdsl:" in out, out
