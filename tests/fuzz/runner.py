"""Compile, run and judge programs per target and launch layout; the sanitized subprocess."""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

import tdsl
from tdsl.errors import TdslError

from .tree import Expected, Node, Program, render_program, Unspecified
from .oracle import compare, oracle, result_precision, stmt_nodes
from .gen import generate, generate_grad, hostile_names
from .control import generate_control, generate_control_grad
from .inputs import Inputs, make_inputs


def compile_for(label: str, source: str):
    """tdsl.compile for a target label: numpy, c, opencl:cpu or opencl:gpu (the launch layout)."""
    target, _, layout = label.partition(":")
    old = os.environ.get("TDSL_OPENCL_LAYOUT")
    if layout:
        os.environ["TDSL_OPENCL_LAYOUT"] = layout   # read when the OpenCL program is built
    try:
        return tdsl.compile(source, target=target, filename="fuzz.tdsl")
    finally:
        if layout:
            os.environ.pop("TDSL_OPENCL_LAYOUT") if old is None else os.environ.__setitem__("TDSL_OPENCL_LAYOUT", old)


def call(fn, inputs: Inputs, prog: Program):
    """('ok', value) | ('tdsl', error) | ('raw', error); also ('modified', name) when an input changed."""
    saved = {k: np.array(v, copy=True) for k, v in inputs.args.items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if prog.by_keyword:
                out = ("ok", fn(**{prog.rename.get(p.name, p.name): inputs.args[p.name] for p in prog.params}))
            else:
                out = ("ok", fn(*[inputs.args[p.name] for p in prog.params]))
    except TdslError as err:
        out = ("tdsl", err)
    except Exception as err:   # the fuzzer's point: any other exception is a finding
        out = ("raw", err)
    for name, before in saved.items():
        if not np.array_equal(before, inputs.args[name], equal_nan=before.dtype.kind == "f"):
            return ("modified", name)
    return out


@dataclass
class Finding:
    """A disagreement: what kind, on which target, for which program and inputs."""

    kind: str
    label: str
    prog: Program
    inputs: Inputs | None
    detail: str
    shrunk: bool = False
    original: Program | None = None   # the program as generated, before shrinking

    def key(self) -> tuple:
        return (self.kind, self.label.split(":")[0], ops_of(self.prog))


def names_of(prog: Program) -> tuple:
    """The hostile names a program still shows (part of what tells findings apart)."""
    text = render_program(prog)
    return tuple(sorted(v for v in prog.rename.values() if re.search(rf"(?<![\w]){re.escape(v)}(?![\w])", text)))


def ops_of(prog: Program) -> tuple:
    """The sorted names of the ops a program uses (part of what tells findings apart)."""
    seen, out = set(), []
    if prog.stmts is not None:
        return tuple(sorted(set(control_ops(prog)))) + (("grad",) if prog.grad_of is not None else ())

    def walk(node: Node):
        if id(node) in seen:
            return
        seen.add(id(node))
        out.append(node.attrs.get("fn", node.op) if node.op in ("un", "bin", "reduce", "softmax", "zeros", "like")
                   else node.op)
        for kid in node.kids:
            walk(kid)
    walk(prog.grad_of or prog.result)
    return tuple(sorted(set(out) - {"param", "lit", "size"})) + (("grad",) if prog.grad_of is not None else ())


def control_ops(prog: Program) -> list:
    """The statement kinds and expression ops of a control-flow program."""
    out = []

    def stmts(body: list):
        for s in body:
            out.append({"assign": "=", "aug": f"{s.op}=", "set": f"[]{s.op or ''}="}.get(s.kind, s.kind))
            if s.kind == "if" and s.orelse:
                out.append("elif" if s.orelse[0].kind == "if" and s.orelse[0].name == "elif" else "else")
            if s.kind == "for" and len(s.bounds) == 3:
                out.append("range-step")
            stmts(s.body)
            stmts(s.orelse)
    stmts(prog.stmts)
    seen = set()

    def walk(node: Node):
        if id(node) in seen:
            return
        seen.add(id(node))
        if node.op == "dindex":
            out.extend("sub-" + sub[0] for sub in node.attrs["subs"])
        out.append(node.attrs.get("fn", node.op) if node.op in ("un", "bin", "reduce", "softmax", "zeros", "like")
                   else node.op)
        for kid in node.kids:
            walk(kid)
    for root in stmt_nodes(prog):
        walk(root)
    return [o for o in out if o not in ("param", "lit", "size", "var")]


def expected_outcome(prog: Program, inputs: Inputs):
    """('ok', value) | ('raise', why) | ('unspecified', why) from the NumPy oracle."""
    try:
        return ("ok", oracle(prog, inputs.args, inputs.sizes))
    except Expected as err:
        return ("raise", str(err))
    except Unspecified as err:
        return ("unspecified", str(err))


def judge(outcome, expected, prog: Program) -> tuple[str, str] | None:
    """(kind, detail) when a target's outcome disagrees with the oracle's."""
    status, value = outcome
    if status == "modified":
        return "input-modified", f"the call changed its argument {value}"
    if status == "raw":
        return "raw-exception", f"{type(value).__name__}: {value}"
    if expected[0] == "raise":
        if status == "ok":
            return "missing-error", f"returned {short(value)}; NumPy/the contract: {expected[1]}"
        return None
    if status == "tdsl":
        return "spurious-error", f"{type(value).__name__}: {value}"
    why = compare(value, expected[1], grad=prog.grad_of is not None, precision=result_precision(prog))
    return ("wrong", f"{why}\n  got: {short(value)}\n  expected: {short(expected[1])}") if why else None


def short(value) -> str:
    """A value as a short one-line text."""
    if isinstance(value, tuple):
        return repr(value)
    text = np.array2string(np.asarray(value), threshold=20, precision=8).replace("\n", " ")
    return f"{text} ({np.asarray(value).dtype})"


def judge_against_reference(outcome, ref, prog: Program) -> tuple[str, str] | None:
    """A compiled target against the reference interpreter (used where the oracle has no opinion)."""
    if outcome[0] != "ok" or ref[0] != "ok":
        if (outcome[0] == "ok") != (ref[0] == "ok"):
            def shown(o):
                return f"{o[0]} {short(o[1]) if o[0] == 'ok' else o[1]}"
            return "differs-from-reference", f"target {shown(outcome)}; reference {shown(ref)}"
        return None
    why = compare(outcome[1], ref[1], precision=result_precision(prog))
    return ("differs-from-reference", why) if why else None


def module_source(progs: list) -> str:
    """The programs as one .tdsl module."""
    return "\n".join(render_program(p) for p in progs)


def build(label: str, progs: list, findings: list) -> dict:
    """{function name: compiled function} for `progs` as one module; a failed build is bisected."""
    if not progs:
        return {}
    try:
        module = compile_for(label, module_source(progs))
        return {p.name: function_of(module, p.shown) for p in progs}
    except Exception as err:   # a TdslError or a raw one: both are findings once bisected
        if len(progs) > 1:
            half = len(progs) // 2
            return {**build(label, progs[:half], findings), **build(label, progs[half:], findings)}
        raw = not isinstance(err, TdslError)
        kind = "raw-exception" if raw else "rejected" if label == "numpy" else "build"
        findings.append(Finding(kind, label, progs[0], None, f"{type(err).__name__}: {str(err)[:1500]}"))
        return {}


def function_of(module, name: str):
    """A function of a module: as an attribute, except names Python keeps for itself (`m["__dict__"]`)."""
    if name.startswith("__") and hasattr(type(module), "__getitem__"):
        return module[name]
    return getattr(module, name)


def check_call(prog: Program, inputs: Inputs, fns: dict, labels: list) -> list:
    """Run one call on the reference and every target: [(label, kind, detail)] of disagreements."""
    expected = expected_outcome(prog, inputs)
    if expected[0] == "unspecified":
        return []
    use_oracle = prog.grad_of is None or prog.smooth
    ref = call(fns["numpy"], inputs, prog) if "numpy" in fns else None
    problems = []
    for label in ["numpy"] + labels:
        if label not in fns:
            continue
        outcome = ref if label == "numpy" else call(fns[label], inputs, prog)
        verdict = judge(outcome, expected, prog) if use_oracle else None
        if verdict is None and label != "numpy" and ref is not None and expected[0] == "ok":
            verdict = judge_against_reference(outcome, ref, prog)
        if verdict is not None:
            problems.append((label, *verdict))
    return problems


@dataclass
class Config:
    """What a run covers."""

    labels: list          # compiled targets: c, opencl:cpu, opencl:gpu
    large: float = 0.1    # fraction of programs called with sizes past the threading/blocking thresholds
    grads: float = 0.15   # fraction of programs that are a grad
    calls: int = 2        # calls per program (the first without special values)
    hostile: float = 0.3  # fraction of programs with names taken from C, OpenCL, Python and generated locals
    control: float = 0.3  # fraction of programs with loops, branches and indexed updates (section 11)
    batch: int = 40


def program(seed: int, index: int, cfg: Config, module_names: set | None = None) -> Program:
    """Program `index` of a run: depends only on (seed, index) (and the names others in its batch took)."""
    pseed = seed * 1_000_003 + index
    rng = random.Random(pseed ^ 0x5EED)
    grad = rng.random() < cfg.grads
    # drawn apart from `rng`, so that the other programs of a seed stay what they were before section 11
    control = random.Random(pseed ^ 0xC0DE).random() < cfg.control
    if control:
        prog = (generate_control_grad if grad else generate_control)(pseed, f"g{index}")
    else:
        prog = (generate_grad if grad else generate)(pseed, f"g{index}")   # not f{i}: f32 is a builtin
    if rng.random() < cfg.hostile:
        hostile_names(prog, rng, set() if module_names is None else module_names)
    return prog


def inputs_for(prog: Program, cfg: Config) -> list:
    """The inputs of each call of a program (the first plain, the others with special values)."""
    rng = random.Random(prog.seed ^ 0xCA11)
    large = rng.random() < cfg.large and not prog.no_large
    return [make_inputs(prog, prog.seed * 7 + j, large=large and j == 0, special=j > 0) for j in range(cfg.calls)]


def run_batch(progs: list, cfg: Config, stats: dict) -> list:
    """Build `progs` once per target and check every call: the findings, unshrunk."""
    findings = []
    fns = {}
    for label in ["numpy"] + cfg.labels:
        start = time.perf_counter()
        built = build(label, progs if label == "numpy" else [p for p in progs if p.name in fns], findings)
        stats["build_s"] = stats.get("build_s", 0) + time.perf_counter() - start
        for name, fn in built.items():
            fns.setdefault(name, {})[label] = fn
    start = time.perf_counter()
    for prog in progs:
        for inputs in inputs_for(prog, cfg):
            stats["calls"] = stats.get("calls", 0) + 1
            for label, kind, detail in check_call(prog, inputs, fns.get(prog.name, {}), cfg.labels):
                findings.append(Finding(kind, label, prog, inputs, detail))
    stats["call_s"] = stats.get("call_s", 0) + time.perf_counter() - start
    return findings


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def libasan() -> str | None:
    """The C compiler's AddressSanitizer runtime, for LD_PRELOAD (tests/test_c_backend.py uses it too)."""
    cc = os.environ.get("TDSL_CC") or os.environ.get("CC") or "cc"
    try:
        found = subprocess.run(cc.split() + ["-print-file-name=libasan.so"], capture_output=True, text=True,
                               timeout=60).stdout.strip()
    except OSError:
        return None
    return found if found and os.path.isabs(found) and os.path.exists(found) else None


def sanitized_run(argv: list, log=print) -> int:
    """Run the fuzzer again on the c target, built with ASan and UBSan, in a process that preloads ASan."""
    asan = libasan()
    if asan is None:
        log("no AddressSanitizer runtime: --sanitize skipped")
        return 0
    env = dict(os.environ, TDSL_SANITIZE="1", LD_PRELOAD=asan, ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    args = [a for a in argv if a != "--sanitize"]
    child = subprocess.run([sys.executable, "-m", "tests.fuzz", *args, "--targets", "numpy,c"], env=env,
                           cwd=_repo_root(), capture_output=True, text=True)
    log(child.stdout[-20000:])
    if child.returncode not in (0, 1):   # 1: findings, already printed; anything else: the sanitizer stopped it
        log(f"sanitized run died (status {child.returncode}):\n{child.stderr[-6000:]}")
    return child.returncode
