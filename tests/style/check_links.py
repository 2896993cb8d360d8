#!/usr/bin/env python3
"""docs_links: every reference in the docs and source comments resolves inside the repository.

Checks, with the standard library only:
  * relative markdown links `[text](target)` and link definitions `[id]: target` in every .md file (README.md, docs/, bench/, examples/, ...): the target exists,
    stays inside the repository, and a `#anchor` into a .md file names one of its headings;
  * `docs/...` and `bench/...` paths mentioned anywhere in those .md files and in source files
    (.cpp .hpp .h .inc .py .sh .cmake CMakeLists.txt .yaml .in): the path exists from the repository root;
  * no reference leaves the repository (`../shared`, `../../x` above the root).
Usage: check_links.py [REPO_ROOT]   (default: two folders above this script). Exit 1 lists each problem.
"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
SKIP_DIRS = {".git", ".cache", "__pycache__", "node_modules", "out"}
SOURCE_EXT = (".cpp", ".hpp", ".h", ".inc", ".py", ".sh", ".cmake", ".yaml", ".in", ".txt")

LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
LINK_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?\s*$")
# docs/... or bench/... not preceded by a path character (so build/bench/x is not one).
MENTION = re.compile(r"(?<![\w./-])((?:docs|bench)/[\w./-]*[\w/])")
OUTSIDE = re.compile(r"\.\./shared\b")
CODE_FENCE = re.compile(r"^\s*(```|~~~)")


def walk():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        dirnames[:] = sorted(d for d in dirnames
                             if d not in SKIP_DIRS and not (rel == "." and (d.startswith("build") or d == "shared")))
        for f in sorted(filenames):
            yield os.path.join(dirpath, f)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


_anchors = {}


def anchors(path):
    if path not in _anchors:
        found, seen, fence = set(), {}, False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if CODE_FENCE.match(line):
                    fence = not fence
                    continue
                m = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
                if m:
                    s = slug(m.group(1))
                    n = seen.get(s, 0)
                    seen[s] = n + 1
                    found.add(s if n == 0 else f"{s}-{n}")
        _anchors[path] = found
    return _anchors[path]


def inside(path):
    return os.path.commonpath([ROOT, os.path.abspath(path)]) == ROOT


def check_target(src, lineno, target, problems):
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
        return  # http:, https:, mailto:, ...
    path, _, anchor = target.partition("#")
    where = f"{os.path.relpath(src, ROOT)}:{lineno}"
    resolved = os.path.normpath(os.path.join(os.path.dirname(src), path)) if path else src
    if not inside(resolved):
        problems.append(f"{where}: link '{target}' leaves the repository")
    elif not os.path.exists(resolved):
        problems.append(f"{where}: link '{target}' does not exist ({os.path.relpath(resolved, ROOT)})")
    elif anchor and resolved.endswith(".md") and anchor.lower() not in anchors(resolved):
        problems.append(f"{where}: link '{target}': no heading '#{anchor}' in {os.path.relpath(resolved, ROOT)}")


def check_mentions(src, lineno, line, problems):
    where = f"{os.path.relpath(src, ROOT)}:{lineno}"
    if OUTSIDE.search(line):
        problems.append(f"{where}: refers to '../shared', outside the repository")
    for m in MENTION.finditer(line):
        path = m.group(1).rstrip(".")
        if "*" in path or "..." in path:
            continue
        if not os.path.exists(os.path.join(ROOT, path)):
            problems.append(f"{where}: mentions '{path}', which does not exist")


def main():
    problems, md_files, src_files = [], 0, 0
    for path in walk():
        name = os.path.basename(path)
        if name.endswith(".md"):
            md_files += 1
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    for m in LINK.finditer(line):
                        check_target(path, lineno, m.group(1), problems)
                    m = LINK_DEF.match(line)
                    if m:
                        check_target(path, lineno, m.group(1), problems)
                    check_mentions(path, lineno, line, problems)
        elif name.endswith(SOURCE_EXT) and (name == "CMakeLists.txt" or not name.endswith(".txt")):
            if os.path.abspath(path) == os.path.abspath(__file__):
                continue  # this file names the patterns it looks for
            src_files += 1
            try:
                with open(path, encoding="utf-8") as f:
                    lines = list(f)
            except UnicodeDecodeError:
                continue
            for lineno, line in enumerate(lines, 1):
                check_mentions(path, lineno, line, problems)
    for p in problems:
        print(p)
    print(f"docs_links: {md_files} markdown files, {src_files} source files, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
