#!/usr/bin/env python3
"""Validate the retrieval eval set: questions.json against docs/*.md.

Checks: JSON parses; ids unique; every `document` exists; every `answer` is a
single line of 30-200 chars that occurs exactly once across all docs, and in
the named doc. Prints corpus and question-style counts. Exit 1 on any error.
"""
import collections
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent
DOCS = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))}


def main() -> int:
    questions = json.loads((ROOT / "questions.json").read_text(encoding="utf-8"))
    errors = []
    ids = collections.Counter(q["id"] for q in questions)
    errors += [f"duplicate id {i}" for i, n in ids.items() if n > 1]
    for q in questions:
        qid, doc, ans = q["id"], q["document"], q["answer"]
        if doc not in DOCS:
            errors.append(f"{qid}: document {doc} not found")
            continue
        if "\n" in ans or not 30 <= len(ans) <= 200:
            errors.append(f"{qid}: answer must be one line of 30-200 chars (len {len(ans)})")
        hits = {name: text.count(ans) for name, text in DOCS.items() if ans in text}
        if hits != {doc: 1}:
            errors.append(f"{qid}: answer should occur once, only in {doc}; found {hits}")
    for e in errors:
        print("ERROR", e)
    sizes = [len(t.encode("utf-8")) for t in DOCS.values()]
    print(f"documents: {len(DOCS)}, total {sum(sizes) / 1024:.1f} KiB "
          f"(min {min(sizes)} B, max {max(sizes)} B)")
    print(f"questions: {len(questions)}")
    for style, n in collections.Counter(q.get("style", "?") for q in questions).most_common():
        print(f"  {style:<14} {n:>3}  ({100 * n / len(questions):.0f}%)")
    per_doc = collections.Counter(q["document"] for q in questions)
    missing = [d for d in DOCS if d not in per_doc]
    print(f"questions per doc: min {min(per_doc.values())}, max {max(per_doc.values())}"
          + (f"; docs without questions: {missing}" if missing else ""))
    print("OK" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
