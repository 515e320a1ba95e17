#!/usr/bin/env python3
"""Reports import cycles between the modules of each library crate of the workspace.

A module depends on another when its file names it through a `crate::...` path (in `use` or in
an expression), or through `super::` from a submodule to a sibling. Every level is checked: the
top-level modules of a crate (dsl, processor, state, ...), the sibling files inside each of them
(dsl/grouped.rs, dsl/ktable.rs, ...) and those of nested directories (processor/nodes/*.rs). Test modules (`#[cfg(test)]` to the end of a file)
are left out: tests may reach anywhere; so are comments (a doc link is not a dependency). Exits 1 when a cycle exists, printing each one.

Usage: scripts/module-cycles.py [crate-dir ...]   (default: every crate with a src/lib.rs)
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_path(src: Path, file: Path) -> tuple:
    """('dsl', 'grouped') for src/dsl/grouped.rs; ('dsl',) for src/dsl/mod.rs; () for lib.rs."""
    parts = file.relative_to(src).with_suffix("").parts
    if parts in (("lib",), ("main",)):
        return ()
    return parts[:-1] if parts[-1] == "mod" else parts


def strip_tests(text: str) -> str:
    """The file without its test module and comments (doc links are not dependencies)."""
    at = text.find("#[cfg(test)]")
    text = text if at < 0 else text[:at]
    return re.sub(r"//[^\n]*", "", text)


def paths(text: str, here: tuple):
    """Every module path the text names: crate::a::b, crate::a::{b, c::d}, super::b (relative
    to `here`, the naming file's module), as tuples of path segments (items included; the
    caller keeps the longest prefix that is a module)."""
    for m in re.finditer(r"\bcrate((?:::\w+)*)(?:::\{([^}]*)\})?", text):
        base = tuple(re.findall(r"\w+", m.group(1)))
        inner = m.group(2)
        if inner is None:
            yield base
        else:
            for frag in re.findall(r"\w+(?:::\w+)*", inner):
                yield base + tuple(frag.split("::"))
    parent = here[:-1]
    for m in re.finditer(r"(?<!::)\bsuper((?:::\w+)*)(?:::\{([^}]*)\})?", text):
        base = parent + tuple(re.findall(r"\w+", m.group(1)))
        inner = m.group(2)
        if inner is None:
            yield base
        else:
            for frag in re.findall(r"\w+(?:::\w+)*", inner):
                yield base + tuple(frag.split("::"))


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
    modules = {module_path(src, f) for f in files}
    # graphs[parent]: edges between the child modules of `parent` (() is the crate root), at
    # every depth: top-level modules, the files of a module, the files of a nested directory.
    graphs = {}
    for f in files:
        here = module_path(src, f)
        text = strip_tests(f.read_text())
        for named in paths(text, here):
            target = max(
                (named[:n] for n in range(len(named) + 1) if named[:n] in modules), key=len
            )
            common = 0
            while common < min(len(here), len(target)) and here[common] == target[common]:
                common += 1
            if common < len(here) and common < len(target):
                parent = here[:common]
                graphs.setdefault(parent, {}).setdefault(here[common], set()).add(target[common])
    found = []
    for parent, graph in sorted(graphs.items()):
        where = "/".join((crate.name,) + parent)
        found += [f"{where}: {' <-> '.join(c)}" for c in cycles(graph)]
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
