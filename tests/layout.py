#!/usr/bin/env python3
"""The shape of common/: its files in layers that depend one way.

    tests/layout.py [BUILD_DIR]

1. Every source of common/src, and every public header of common/include/lmp, is in a
   layer's folder, and every #include of common/ (src and include/lmp) names a header
   of its own layer or one below: base < avro < io < runtime.
2. Services and tools use common/ through its public headers only.
3. With BUILD_DIR, no two files of liblmp call each other, directly or round a circle:
   the symbols each object file defines and uses (nm) make a graph that must have no
   cycle. Where a lower file must reach a higher one it calls through a table of
   functions the higher one hands it (runtime/rt.h, struct rt_upcalls).

Exit status 0 when the layout holds; otherwise each problem on a line of its own."""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LAYERS = ["base", "avro", "io", "runtime"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of_header(name):
    """The layer of a header named in an #include of common/, or None."""
    if name.startswith("lmp/"):
        name = name[4:]
    folder = name.split("/", 1)[0]
    return folder if folder in LAYERS and "/" in name else None


def includes(path):
    with open(path, encoding="utf-8") as fh:
        return INCLUDE.findall(fh.read())


def check_includes(problems):
    src = os.path.join(ROOT, "common", "src")
    for entry in sorted(os.listdir(src)):
        if os.path.isfile(os.path.join(src, entry)) and entry.endswith((".c", ".h")):
            problems.append(f"common/src/{entry}: not in a layer's folder ({', '.join(LAYERS)})")
    pub = os.path.join(ROOT, "common", "include", "lmp")
    for entry in sorted(os.listdir(pub)):
        if entry not in LAYERS:
            problems.append(f"common/include/lmp/{entry}: not in a layer's folder ({', '.join(LAYERS)})")
    files = [(os.path.join(top, layer, f), layer) for top in (src, pub) for layer in LAYERS
             if os.path.isdir(os.path.join(top, layer))
             for f in sorted(os.listdir(os.path.join(top, layer))) if f.endswith((".c", ".h"))]
    for path, layer in files:
        rel = os.path.relpath(path, ROOT)
        for name in includes(path):
            target = layer_of_header(name)
            if target is None:
                problems.append(f"{rel}: #include \"{name}\": not a header of common/ by its layer's path "
                                f"(lmp/<layer>/<name>.h, or <layer>/<name>.h)")
            elif LAYERS.index(target) > LAYERS.index(layer):
                problems.append(f"{rel} ({layer}): #include \"{name}\" points up, to {target}")


def check_users(problems):
    for top in ("services", "tools"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
            for f in names:
                if f.endswith((".c", ".h")):
                    path = os.path.join(dirpath, f)
                    for name in includes(path):
                        if name.split("/", 1)[0] in LAYERS:
                            problems.append(f"{os.path.relpath(path, ROOT)}: #include \"{name}\": common/'s "
                                            f"insides; use its public headers (lmp/...)")


def check_cycles(build, problems):
    objdir = os.path.join(build, "common", "CMakeFiles", "lmp.dir", "src")
    objects = [os.path.join(d, f) for d, _, names in os.walk(objdir) for f in names if f.endswith(".c.o")]
    if not objects:
        problems.append(f"{objdir}: no object files (build liblmp first)")
        return
    defined, used = {}, {}
    for o in objects:
        name = os.path.relpath(o, objdir)[:-4]
        out = subprocess.run(["nm", o], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in "TDBR":
                defined[p[2]] = name
            elif len(p) == 2 and p[0] == "U":
                used.setdefault(name, set()).add(p[1])
    graph = {f: {defined[s] for s in syms if s in defined and defined[s] != f} for f, syms in used.items()}
    # Tarjan's strongly connected components: any with two files or more is a circle.
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                circles.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in sorted(set(graph) | set(defined.values())):
        if v not in index:
            visit(v)
    for comp in circles:
        calls = [f"{a} -> {b}" for a in comp for b in sorted(graph.get(a, ())) if b in comp]
        problems.append(f"files that call each other round a circle: {', '.join(calls)}")
    for f, targets in sorted(graph.items()):
        for t in sorted(targets):
            lf, lt = f.split("/", 1)[0], t.split("/", 1)[0]
            if lf in LAYERS and lt in LAYERS and LAYERS.index(lt) > LAYERS.index(lf):
                problems.append(f"{f} ({lf}) calls {t} ({lt}), a layer above it")


def main():
    problems = []
    check_includes(problems)
    check_users(problems)
    if len(sys.argv) > 1:
        check_cycles(sys.argv[1], problems)
    for p in problems:
        print(p)
    print(f"layout: {len(problems)} problem{'s' * (len(problems) != 1)}"
          f"{'' if len(sys.argv) > 1 else ' (includes only: no build directory given)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
