"""Write benchmarks/mutation-survivors.md from mutmut's results (`make mutate` runs it).

Per mutated function: killed, survived, timed out, not covered by a unit test, not run yet;
then every survivor with its diff line and the reason it is kept. A survivor whose mutation
only touches an error message, or that is equivalent (numpy's default dtype is float64), is
classified here; any other is listed as "open" for a test to be written.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# a mutant that crashes the interpreter (-11, segfault) is caught as surely as a failing test
STATUS = {
    0: "survived",
    1: "killed",
    -11: "killed",
    None: "not run",
    33: "no test",
    -24: "timeout",
    36: "timeout",
}


def _diff(name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name], cwd=REPO, capture_output=True, text=True
    ).stdout
    lines = [
        line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    return " / ".join(line.strip() for line in lines[:2])


def _reason(diff: str) -> str:
    minus = next((p for p in diff.split(" / ") if p.startswith("-")), "")
    plus = next((p for p in diff.split(" / ") if p.startswith("+")), "")
    if "dtype=None" in plus and "dtype=float" in minus:
        return "equivalent: numpy's default dtype is float64"
    if re.search(r"raise \w+\(", minus) or "XX" in plus or re.search(r"f?\"[^\"]*\"", minus):
        if re.sub(r"\"[^\"]*\"|'[^']*'", "", minus[1:]) == re.sub(
            r"\"[^\"]*\"|'[^']*'", "", plus[1:]
        ):
            return "message text only: errors are tested by type and key word, not word for word"
        if "raise" in minus:
            return "message text only: errors are tested by type and key word, not word for word"
    return "open: no test tells this mutant apart yet"


def main() -> None:
    by_function: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    survivors = []
    for meta in sorted((REPO / "mutants").rglob("*.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            function = name.rsplit("__mutmut_", 1)[0]
            status = STATUS.get(code, f"exit {code}")
            by_function[function][status] += 1
            if status == "survived":
                survivors.append(name)
    columns = ["killed", "survived", "timeout", "no test", "not run"]
    lines = [
        "# Mutation testing: survivors and why each is kept",
        "",
        "Written by `python benchmarks/mutation_report.py` after `make mutate` (mutmut 3.8.1,",
        "`[tool.mutmut]` in pyproject.toml). A timeout counts as killed (the mutant hangs or",
        "crawls); `not run` means the run was stopped before it (mutmut resumes where it left).",
        "",
        "| function | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for function, counts in sorted(by_function.items()):
        lines.append(f"| `{function}` | " + " | ".join(str(counts[c]) for c in columns) + " |")
    totals = collections.Counter()
    for counts in by_function.values():
        totals.update(counts)
    lines += [
        "",
        "Totals: " + ", ".join(f"{c} {totals[c]}" for c in columns),
        "",
        "## Survivors",
        "",
    ]
    for name in survivors:
        diff = _diff(name)
        lines.append(f"- `{name}`: {_reason(diff)}. `{diff}`")
    out = REPO / "benchmarks" / "mutation-survivors.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"{out}: {len(survivors)} survivors, {dict(totals)}")


if __name__ == "__main__":
    main()
