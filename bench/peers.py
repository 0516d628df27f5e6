"""The other libraries bench/run.py times beside tdsl: numexpr, JAX (`jax.jit`) and PyTorch
(`torch.compile`), each where it is installed (`pip install -e .[peers]`).

Each maker takes the workload's NumPy arrays and returns a callable that computes the same
result and waits for it (JAX's `block_until_ready`), or None where the library is missing;
`missing()` says which. The arrays are handed to JAX once (`jnp.asarray`) and shared with
PyTorch (`torch.from_numpy`), so no call copies its inputs.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

import numpy as np

PEERS = ("numexpr", "JAX jit", "torch.compile")
MODULES = {"numexpr": "numexpr", "JAX jit": "jax", "torch.compile": "torch"}


@lru_cache(maxsize=None)
def module(name: str):
    """The peer's module, imported once, or None when it is not installed (or does not import)."""
    try:
        mod = importlib.import_module(MODULES[name])
    except Exception:   # an ImportError, or a broken install (a missing shared library)
        return None
    if name == "JAX jit":
        mod.config.update("jax_enable_x64", True)   # f64 workloads stay f64
    return mod


def missing(names=PEERS) -> list[str]:
    return [n for n in names if module(n) is None]


def _jax():
    jax = module("JAX jit")
    return (jax, jax.numpy) if jax is not None else (None, None)


def _torch():
    return module("torch.compile")


def _jit(fn, *args):
    """JAX: `fn` under jit, on the arrays handed to JAX once; a call waits for its results."""
    jax, jnp = _jax()
    if jax is None:
        return None
    f = jax.jit(fn)
    device_args = [jnp.asarray(a) for a in args]

    def call():
        out = f(*device_args)
        return jax.block_until_ready(out)
    return call


def _compiled(fn, *args):
    """PyTorch: `fn` under torch.compile, on tensors sharing the NumPy arrays' memory."""
    torch = _torch()
    if torch is None:
        return None
    f = torch.compile(fn)
    tensors = [torch.from_numpy(a) if isinstance(a, np.ndarray) else float(a) for a in args]
    return lambda: f(*tensors)


# -- one maker per workload, in bench/run.py's order -----------------------------------------

def w1(x, a, b, c) -> dict:
    ne, (_, jnp), torch = module("numexpr"), _jax(), _torch()
    out = x.copy()
    return {
        "numexpr": (lambda: ne.evaluate("a*exp(-b*x) + c*sin(x)", local_dict=dict(a=a, b=b, c=c, x=x), out=out))
        if ne else None,
        "JAX jit": _jit(lambda x: a * jnp.exp(-b * x) + c * jnp.sin(x), x),
        "torch.compile": _compiled(lambda x, a, b, c: a * torch.exp(-b * x) + c * torch.sin(x), x, a, b, c)
        if torch else None,
    }


def axpy(b, s, c) -> dict:
    ne = module("numexpr")
    out = b.copy()
    return {
        "numexpr": (lambda: ne.evaluate("b + s*c", local_dict=dict(b=b, s=s, c=c), out=out)) if ne else None,
        "JAX jit": _jit(lambda b, c: b + s * c, b, c),
        "torch.compile": _compiled(lambda b, s, c: b + s * c, b, s, c),
    }


def softmax(x) -> dict:
    (jax, _), torch = _jax(), _torch()
    return {
        "JAX jit": _jit(lambda x: jax.nn.softmax(x, axis=1), x) if jax else None,
        "torch.compile": _compiled(lambda x: torch.softmax(x, dim=1), x) if torch else None,
    }


def matmul(a, b) -> dict:
    return {
        "JAX jit": _jit(lambda a, b: a @ b, a, b),
        "torch.compile": _compiled(lambda a, b: a @ b, a, b),
    }


def logistic_step_jax():
    """The step as a JAX user writes it: jax.grad of the loss, under jit (XLA simplifies the chain rule)."""
    jax, jnp = _jax()

    def logistic_loss_jax(w, b, x, y):
        p = 1 / (1 + jnp.exp(-(x @ w + b)))
        eps = 1e-7
        return -jnp.mean(y * jnp.log(p + eps) + (1 - y) * jnp.log(1 - p + eps))

    def step(x, y, w, b, lr):
        gw, gb = jax.grad(logistic_loss_jax, argnums=(0, 1))(w, b, x, y)
        return w - lr * gw, b - lr * gb
    return step


def logistic_step_torch(x, y, w, b, lr):
    """The step as hand-simplified NumPy writes it (sigmoid, p - y, one product each way)."""
    p = (x @ w + b).sigmoid()
    g = (p - y) / x.shape[0]
    return w - lr * (x.T @ g), b - lr * g.sum()


def logistic(x, y, w, b, lr) -> dict:
    jax, _ = _jax()
    return {
        "JAX jit": _jit(logistic_step_jax(), x, y, w, b, lr) if jax else None,
        "torch.compile": _compiled(logistic_step_torch, x, y, w, b, lr),
    }


# A fresh process: JAX's first jit call of the logistic step (trace, XLA compile, run), after
# `import jax` and the data are made, as bench/run.py's LOAD_SCRIPT times tdsl's load + first call.
JAX_FIRST_CALL = """
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import peers
jax = peers.module("JAX jit")
x, y, w, b, lr = peers.logistic_data(int(sys.argv[2]), int(sys.argv[3]))
step = jax.jit(peers.logistic_step_jax())
args = [jax.numpy.asarray(a) for a in (x, y, w, b, lr)]
jax.block_until_ready(args)
t0 = time.perf_counter()
jax.block_until_ready(step(*args))
print(0.0, 0.0, time.perf_counter() - t0)
"""


def logistic_data(n: int, d: int):
    """The logistic step's arguments: x f32[n, d], y, w, b, lr (the same in every process)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    w = (rng.standard_normal(d) * 0.1).astype(np.float32)
    return x, y, w, np.float32(0.0), np.float32(0.1)
