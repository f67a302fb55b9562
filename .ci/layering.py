#!/usr/bin/env python3
"""Checks that a crate's top-level modules form layers with no cycle.

Usage: layering.py CRATE_SRC_DIR LAYER [LAYER ...]
Each LAYER is a comma-separated list of top-level module names, lowest
first. A module may refer (through `crate::...`) only to modules of lower
layers; every module of the crate must be in exactly one layer. References
through the crate root's re-exports (`crate::Error`) count as references to
the module that defines them (`pub use module::{...}` in lib.rs).
"""
import os
import re
import sys


def top_level_modules(src):
    lib = open(os.path.join(src, "lib.rs")).read()
    return re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", lib, re.M), lib


def root_reexports(lib):
    """`pub use module::{A, B};` / `pub use module::A;` → {A: module}."""
    names = {}
    for module, body in re.findall(r"pub use ([a-z_][a-z0-9_]*)::\{([^}]*)\};", lib):
        for name in re.split(r"\s*,\s*", body.strip()):
            if name:
                names[name.split(" as ")[-1].strip()] = module
    for module, name in re.findall(r"pub use ([a-z_][a-z0-9_]*)::([A-Za-z_][A-Za-z0-9_]*);", lib):
        names[name] = module
    return names


def files_of(src, module):
    single = os.path.join(src, module + ".rs")
    if os.path.exists(single):
        yield single
    folder = os.path.join(src, module)
    if os.path.isdir(folder):
        for root, _, files in os.walk(folder):
            for f in files:
                if f.endswith(".rs"):
                    yield os.path.join(root, f)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def first_segments(group):
    """The first path segment of each item of a `{...}` use group."""
    out, depth, current = [], 0, ""
    for ch in group:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if depth == 0 and ch == ",":
            out.append(current)
            current = ""
        else:
            current += ch
    out.append(current)
    return [re.split(r"::|\{|\s", item.strip())[0] for item in out if item.strip()]


def references(text):
    """Top-level names referred to as `crate::name` or `crate::{a, b}`."""
    refs = set()
    i = 0
    while True:
        i = text.find("crate::", i)
        if i < 0:
            return refs
        # `$crate::` in macros is the crate too.
        rest = text[i + len("crate::"):]
        if rest.startswith("{"):
            depth, j = 0, 0
            for j, ch in enumerate(rest):
                depth += ch == "{"
                depth -= ch == "}"
                if depth == 0:
                    break
            refs.update(first_segments(rest[1:j]))
        else:
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", rest)
            if m:
                refs.add(m.group(0))
        i += len("crate::")


def main():
    src, layers = sys.argv[1], [l.split(",") for l in sys.argv[2:]]
    modules, lib = top_level_modules(src)
    rank = {}
    for n, layer in enumerate(layers):
        for module in layer:
            if module in rank:
                sys.exit(f"layering: `{module}` is listed twice")
            rank[module] = n
    missing = [m for m in modules if m not in rank]
    extra = [m for m in rank if m not in modules]
    failures = []
    if missing:
        failures.append(f"modules in no layer: {', '.join(missing)} (add them to the layers in .ci/check-architecture)")
    if extra:
        failures.append(f"layers name modules that do not exist: {', '.join(extra)}")
    reexports = root_reexports(lib)
    for module in modules:
        if module not in rank:
            continue
        for path in files_of(src, module):
            for ref in sorted(references(strip_comments(open(path).read()))):
                target = reexports.get(ref, ref)
                if target == module or target not in rank:
                    continue
                if rank[target] >= rank[module]:
                    failures.append(
                        f"{path}: `{module}` (layer {rank[module]}) refers to `crate::{ref}` "
                        f"(`{target}`, layer {rank[target]}); a module may use only lower layers"
                    )
    for f in failures:
        print(f"architecture: {f}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
