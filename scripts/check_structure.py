#!/usr/bin/env python3
"""Structure rules of the client crate (src/), checked in CI:

1. No import cycle between top-level modules (`crate::a` used in `b` and `crate::b` in `a`,
   or any longer loop).
2. No function longer than MAX_LINES lines, except those whose doc or line comment above says
   why with the word "linear" (a script read top to bottom, like the demo).

Prints every violation and exits 1 if there is one; with --report, prints the module graph and
the longest functions too.
"""

import os
import re
import sys

MAX_LINES = 80
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def rust_files():
    for base, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".rs"):
                yield os.path.join(base, f)


def top_module(path):
    rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
    first = rel.split("/")[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_comments_and_strings(text):
    """Blanks out comments, string and char literals (keeping newlines) so braces and
    `crate::` inside them do not count."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + 2 + len(hashes))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:i + 4])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_graph():
    graph = {}
    for path in rust_files():
        mod = top_module(path)
        if mod in ("lib", "main"):
            continue
        code = strip_comments_and_strings(open(path, encoding="utf-8").read())
        if re.search(r"#\[cfg\(test\)\]\s*mod tests\s*\{", code):
            code = code[: re.search(r"#\[cfg\(test\)\]\s*mod tests\s*\{", code).start()]
        if path.endswith("tests.rs") or "/tests/" in path:
            continue
        used = set(re.findall(r"crate::([a-z_][a-z0-9_]*)", code))
        graph.setdefault(mod, set()).update(u for u in used if u != mod and u != "manifest_dir")
    return graph


def cycles(graph):
    found = []
    state = {}
    stack = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                found.append(stack[stack.index(d):] + [d])
            elif d in graph and state.get(d) is None:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if state.get(m) is None:
            visit(m)
    return found


def long_functions():
    """Functions of the client crate; the simulator (its own crate) and test files, which read
    as scenarios, are not held to the rule."""
    out = []
    for path in rust_files():
        rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
        if rel.startswith("sim/") or rel.endswith("tests.rs") or "/tests/" in rel:
            continue
        raw = open(path, encoding="utf-8").read()
        code = strip_comments_and_strings(raw)
        raw_lines = raw.split("\n")
        for m in re.finditer(r"\bfn\s+([A-Za-z0-9_]+)[^;{]*\{", code):
            start = code.count("\n", 0, m.start())
            depth, i = 0, m.end() - 1
            while i < len(code):
                if code[i] == "{":
                    depth += 1
                elif code[i] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            end = code.count("\n", 0, i)
            length = end - start + 1
            above = "\n".join(raw_lines[max(0, start - 6):start]).lower()
            exempt = "linear" in above
            out.append((length, rel, start + 1, m.group(1), exempt))
    return sorted(out, reverse=True)


def main():
    report = "--report" in sys.argv
    problems = []
    graph = module_graph()
    for c in cycles(graph):
        problems.append("import cycle: " + " -> ".join(c))
    for length, rel, line, name, exempt in long_functions():
        if length > MAX_LINES and not exempt:
            problems.append(f"{rel}:{line}: fn {name} is {length} lines (at most {MAX_LINES}; split it, or say why it is linear)")
    if report:
        for m in sorted(graph):
            print(f"{m} -> {' '.join(sorted(graph[m]))}")
        for length, rel, line, name, exempt in long_functions()[:15]:
            print(f"{length:4} {rel}:{line} {name}{' (linear)' if exempt else ''}")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"structure: no import cycle among {len(graph)} modules; no function over {MAX_LINES} lines")


if __name__ == "__main__":
    main()
