#!/usr/bin/env python3
"""Regenerates the values table in helm/trd-sentinel/README.md from values.yaml: each
key's `# --` comment (and its continuation lines) is its description; a key without
one inherits its nearest documented parent's. `--check` fails when the README is stale.

    python3 scripts/chart-readme.py [--check]
"""

import json
import pathlib
import re
import sys

import yaml

CHART = pathlib.Path(__file__).resolve().parents[1] / "helm" / "trd-sentinel"
BEGIN, END = "<!-- values-table:begin -->", "<!-- values-table:end -->"


def descriptions(lines):
    docs, path, comment, in_comment = {}, [], [], False
    for line in lines:
        start = re.match(r"^\s*# -- (.*)$", line)
        if start:
            comment, in_comment = [start.group(1)], True
            continue
        more = re.match(r"^\s*#\s?(.*)$", line)
        if more:
            if in_comment:
                comment.append(more.group(1))
            continue
        key = re.match(r"^(\s*)([A-Za-z_]\w*):", line)
        if key:
            path = path[: len(key.group(1)) // 2] + [key.group(2)]
            if comment:
                docs[".".join(path)] = " ".join(comment)
        comment, in_comment = [], False
    return docs


def leaves(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def table():
    text = (CHART / "values.yaml").read_text()
    docs = descriptions(text.splitlines())
    rows = ["| Key | Default | Description |", "|---|---|---|"]
    for key, value in leaves(yaml.safe_load(text)):
        parts = key.split(".")
        doc = next((docs[".".join(parts[:n])] for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in docs), "")
        cell = lambda s: s.replace("|", "\\|")
        rows.append(f"| `{key}` | `{cell(json.dumps(value))}` | {cell(doc)} |")
    return "\n".join(rows)


def main():
    readme_path = CHART / "README.md"
    readme = readme_path.read_text()
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{BEGIN}\n{table()}\n{END}{tail}"
    if "--check" in sys.argv:
        if updated != readme:
            sys.exit("helm/trd-sentinel/README.md is stale: run python3 scripts/chart-readme.py")
        return
    readme_path.write_text(updated)


if __name__ == "__main__":
    main()
