#!/usr/bin/env python3
"""Reports import cycles between the modules of each library crate of the workspace.

A module depends on another when its file names it through a `crate::...` path (in `use` or in
an expression), or through `super::` from a submodule to a sibling. Two levels are checked:
the top-level modules of a crate (dsl, processor, state, ...) and the sibling files inside each
of them (dsl/grouped.rs, dsl/ktable.rs, ...). Test modules (`#[cfg(test)]` to the end of a file)
are left out: tests may reach anywhere; so are comments (a doc link is not a dependency). Exits 1 when a cycle exists, printing each one.

Usage: scripts/module-cycles.py [crate-dir ...]   (default: every crate with a src/lib.rs)
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_of(src: Path, file: Path):
    """('dsl', 'grouped') for src/dsl/grouped.rs; ('dsl', None) for src/dsl/mod.rs."""
    parts = file.relative_to(src).with_suffix("").parts
    if parts == ("lib",):
        return (None, None)
    top = parts[0]
    sub = parts[1] if len(parts) > 1 and parts[1] != "mod" else None
    return (top, sub)


def strip_tests(text: str) -> str:
    """The file without its test module and comments (doc links are not dependencies)."""
    at = text.find("#[cfg(test)]")
    text = text if at < 0 else text[:at]
    return re.sub(r"//[^\n]*", "", text)


def paths(text: str):
    # crate::a::b, crate::a::{b, c}, super::b
    for m in re.finditer(r"\bcrate::(\w+)(?:::(\w+|\{[^}]*\}))?", text):
        subs = m.group(2) or ""
        names = re.findall(r"\w+", subs) if subs.startswith("{") else [subs]
        for s in names or [""]:
            yield ("crate", m.group(1), s)
    for m in re.finditer(r"\bsuper::(\w+|\{[^}]*\})", text):
        for s in re.findall(r"\w+", m.group(1)):
            yield ("super", s, None)


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def check(crate: Path) -> list:
    src = crate / "src"
    files = [f for f in src.rglob("*.rs") if "bin" not in f.relative_to(src).parts]
    tops = {module_of(src, f)[0] for f in files} - {None}
    subs = {}
    for f in files:
        top, sub = module_of(src, f)
        if top and sub:
            subs.setdefault(top, set()).add(sub)
    top_graph, sub_graphs = {t: set() for t in tops}, {}
    for f in files:
        top, sub = module_of(src, f)
        text = strip_tests(f.read_text())
        for kind, a, b in paths(text):
            if kind == "crate":
                if a in tops and top and a != top:
                    top_graph[top].add(a)
                if a == top and sub and b in subs.get(top, ()) and b != sub:
                    sub_graphs.setdefault(top, {}).setdefault(sub, set()).add(b)
            elif kind == "super" and top and sub and a in subs.get(top, ()) and a != sub:
                sub_graphs.setdefault(top, {}).setdefault(sub, set()).add(a)
            elif kind == "super" and top and not sub and a in tops and a != top:
                # `super::` of a top-level module is the crate root.
                top_graph[top].add(a)
    found = [f"{crate.name}: {' <-> '.join(c)}" for c in cycles(top_graph)]
    for top, g in sorted(sub_graphs.items()):
        found += [f"{crate.name}/{top}: {' <-> '.join(c)}" for c in cycles(g)]
    return found


def main():
    crates = [Path(a) for a in sys.argv[1:]] or sorted(
        p.parent.parent for p in ROOT.glob("*/src/lib.rs")
    )
    found = [c for crate in crates for c in check(crate)]
    for c in found:
        print(f"cycle: {c}")
    print(f"{len(crates)} crates checked, {len(found)} module cycles")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
