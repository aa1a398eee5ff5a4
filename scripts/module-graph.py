#!/usr/bin/env python3
"""The module graph of a crate, from its sources: which module names which.

    scripts/module-graph.py [SRC_DIR] [--modules] [--edges]

Reads every .rs file under SRC_DIR (default src), takes each file as a module
(src/server/conn.rs is server::conn, src/jose/mod.rs is jose), and collects
the paths it names: `crate::a::b`, `super::x` and `self::x`, outside its
`#[cfg(test)]` module (test code may reach anywhere; a module declared under
`#[cfg(test)]` in a file of its own, such as `tests.rs` or `test_support.rs`,
is test code as a whole and names nothing). A path counts for the
longest module it names. Prints the import cycles: groups of modules that
reach each other (strongly connected components), first between top-level
modules, then between any modules. With --edges it also prints every edge.
Exits 1 when there is a cycle, so that a test or CI step can keep the graph
acyclic. The same as `cargo modules dependencies --acyclic`, without
installing anything.
"""
import os
import re
import sys


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return "::".join(rel) or "crate"


def without_tests(text):
    # The unit tests sit at the bottom of a file, in `#[cfg(test)] mod tests`.
    match = re.search(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod \w+", text)
    return text[: match.start()] if match else text


def test_modules(module, text):
    """The modules `module` declares under `#[cfg(test)]` as files of their own."""
    found = re.finditer(
        r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod (\w+);", text
    )
    prefix = "" if module == "crate" else module + "::"
    return {prefix + match.group(1) for match in found}


def without_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def named_paths(text):
    """Every `crate::…`, `super::…` or `self::…` path, with `use` groups expanded."""
    paths = []
    for match in re.finditer(r"\b(crate|super|self)((?:::\w+)*)(::\{)?", text):
        head = match.group(1) + match.group(2)
        if match.group(3):
            depth, i = 1, match.end()
            while i < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            inner = text[match.end() : i - 1]
            for part in re.split(r",(?![^{]*\})", inner):
                part = part.strip()
                name = re.match(r"(\w+(?:::\w+)*)", part)
                if name and name.group(1) != "self":
                    paths.append(head + "::" + name.group(1))
                elif name:
                    paths.append(head)
        else:
            paths.append(head)
    return paths


def resolve(path, here, modules):
    parts = path.split("::")
    base = [] if here == "crate" else here.split("::")
    if parts[0] == "crate":
        parts = parts[1:]
    else:
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
        parts = base + parts
    for n in range(len(parts), 0, -1):
        name = "::".join(parts[:n])
        if name in modules:
            return name
    return None


def cycles(nodes, edges):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return sorted(out)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = args[0] if args else "src"
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(folder, name)
                files[module_of(root, path)] = path
    modules = set(files)
    texts = {m: without_comments(open(p, encoding="utf-8").read()) for m, p in files.items()}
    tests = set().union(*(test_modules(m, t) for m, t in texts.items()))
    edges = {}
    for module, path in files.items():
        if any(module == t or module.startswith(t + "::") for t in tests):
            continue
        text = without_comments(without_tests(open(path, encoding="utf-8").read()))
        for named in named_paths(text):
            target = resolve(named, module, modules)
            if target and target != module and not module.startswith(target + "::"):
                edges.setdefault(module, set()).add(target)
    top = {}
    for a, targets in edges.items():
        for b in targets:
            ta, tb = a.split("::")[0], b.split("::")[0]
            if ta != tb:
                top.setdefault(ta, set()).add(tb)
    if "--edges" in sys.argv:
        for a in sorted(edges):
            print(f"{a} -> {', '.join(sorted(edges[a]))}")
    top_cycles = cycles({m.split("::")[0] for m in modules}, top)
    all_cycles = cycles(modules, edges)
    print(f"{root}: {len(modules)} modules, {sum(len(t) for t in edges.values())} edges")
    print(f"cycles between top-level modules: {len(top_cycles)}")
    for group in top_cycles:
        print("  " + " <-> ".join(group))
    print(f"cycles between modules: {len(all_cycles)}")
    for group in all_cycles:
        print("  " + " <-> ".join(group))
    sys.exit(1 if top_cycles or all_cycles else 0)


if __name__ == "__main__":
    main()
