"""Reporting findings as pasteable reproductions, and the run loop."""
from __future__ import annotations

import time

import numpy as np

from .tree import AVOID, render_program
from .runner import Config, Finding, names_of, ops_of, program, run_batch
from .shrinking import reproduces, shrink


LAYOUT_CODE = {"F": "{0} = np.asfortranarray({0})", "strided": "{0} = np.repeat({0}, 2, axis=-1)[..., ::2]",
               "reversed": "{0} = np.ascontiguousarray({0}[::-1])[::-1]", "T": "{0} = np.ascontiguousarray({0}.T).T"}


def known(finding: Finding) -> bool:
    """A finding of an open bug the fuzzer knows (tree.AVOID), counted apart."""
    if "c-undeclared-in-control-flow" in AVOID and finding.kind == "build" and finding.label == "c" \
            and finding.prog.stmts is not None and "undeclared" in finding.detail:
        return True
    return False


def reproduction(finding: Finding) -> str:
    """Python that reproduces the finding in one paste."""
    prog, label = finding.prog, finding.label
    target, _, layout = label.partition(":")
    lines = ["import os", "import numpy as np", "import tdsl", "nan, inf = np.nan, np.inf"]
    if layout:
        lines.append(f"os.environ['TDSL_OPENCL_LAYOUT'] = {layout!r}")
    lines += [f"src = '''\n{render_program(prog)}'''", f"m = tdsl.compile(src, target={target!r})"]
    if finding.inputs is None:
        return "\n".join(lines)
    for p in prog.params:
        value = np.asarray(finding.inputs.args[p.name])
        if not p.shape:
            lines.append(f"{p.name} = np.{value.dtype}({value.item()!r})")
            continue
        lines.append(f"{p.name} = np.array({value.tolist()!r}, dtype=np.{value.dtype}).reshape({value.shape})")
        layout_of = finding.inputs.layouts.get(p.name, "C")
        if layout_of != "C":
            lines.append(LAYOUT_CODE[layout_of].format(p.name))
    if prog.by_keyword:
        keywords = ", ".join(f"{prog.rename.get(p.name, p.name)!r}: {p.name}" for p in prog.params)
        lines.append(f"print({_accessor(prog.shown)}(**{{{keywords}}}))")
    else:
        lines.append(f"print({_accessor(prog.shown)}({', '.join(p.name for p in prog.params)}))")
    return "\n".join(lines)


def _accessor(name: str) -> str:
    return f"m[{name!r}]" if name.startswith("__") else f"getattr(m, {name!r})"


def describe(finding: Finding, labels: list, number: int, origin: str) -> str:
    """A finding as a markdown entry."""
    names = names_of(finding.prog)
    head = (f"### {number}. {finding.kind} on {', '.join(labels)}: {', '.join(finding.key()[2]) or 'no op'}"
            + (f"; names {', '.join(names)}" if names else ""))
    original = ""
    if finding.original is not None and render_program(finding.original) != render_program(finding.prog):
        original = f"\nAs generated (before shrinking):\n\n```\n{render_program(finding.original)[:1500]}```\n"
    return "\n".join([head, "", f"{origin}; program seed {finding.prog.seed}.", "", "```",
                      finding.detail.strip()[:2000], "```", "", "```python", reproduction(finding), "```", original])


class Report:
    """Distinct findings of a run, each shrunk once, written to a markdown file as they come."""

    def __init__(self, path: str | None, origin: str, max_shrink: int = 12, shrink_budget: int = 60):
        self.path, self.origin = path, origin
        self.max_shrink, self.shrink_budget = max_shrink, shrink_budget
        self.distinct, self.raw_keys, self.counts, self.shrunk = {}, {}, {}, 0
        self.known = 0   # findings of open bugs listed in tree.AVOID (tests/test_fuzz_findings.py)

    def add(self, findings: list) -> None:
        """Group a batch's findings (one program failing on several targets is one finding) and record them."""
        groups = {}
        for f in findings:
            groups.setdefault((f.kind, f.prog.name, id(f.inputs)), []).append(f)
        for group in groups.values():
            self.add_group(group)

    def add_group(self, group: list) -> None:
        first = group[0]
        if known(first):
            self.known += 1
            return
        labels = [f.label for f in group]
        targets = tuple(sorted({lab.split(":")[0] for lab in labels}))
        raw_key = (first.kind, targets, ops_of(first.prog), names_of(first.prog))
        if raw_key in self.raw_keys:
            self.counts[self.raw_keys[raw_key]] += 1
            return
        # once shrinking stops, keys are coarse: any program with hostile names counts as one
        small, key = first, (first.kind, targets, ("(names)",) if names_of(first.prog) else ops_of(first.prog), ())
        if self.shrunk < self.max_shrink:
            self.shrunk += 1
            small = shrink(first, self.shrink_budget)
            labels = [lab for lab in labels if lab == first.label or reproduces(small, small.prog, small.inputs, lab)]
            targets = tuple(sorted({lab.split(":")[0] for lab in labels}))
            names = names_of(small.prog)
            # a failure that needs a hostile name is about the name, whatever the ops around it
            key = (small.kind, targets, () if names else ops_of(small.prog), names)
        self.raw_keys[raw_key] = key
        if key in self.distinct:
            self.counts[key] += 1
            return
        self.distinct[key] = (small, labels)
        self.counts[key] = 1
        text = describe(small, labels, len(self.distinct), self.origin)
        print(text, flush=True)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(text + "\n")


def run(count: int, seed: int, cfg: Config, report: Report, log=print) -> dict:
    """Generate and check `count` programs in batches; returns the run's statistics."""
    stats, start = {"programs": count}, time.perf_counter()
    for first in range(0, count, cfg.batch):
        names = set()
        progs = [program(seed, i, cfg, names) for i in range(first, min(count, first + cfg.batch))]
        log(f"batch {first}..{first + len(progs) - 1} (seed {seed})", flush=True)
        report.add(run_batch(progs, cfg, stats))
    stats["seconds"] = time.perf_counter() - start
    stats["distinct_findings"] = len(report.distinct)
    stats["findings"] = sum(report.counts.values())
    stats["known_findings"] = report.known
    return stats
