"""Mutation testing of the safety and billing modules, one module at a time, each by its own tests.

For every module named in tests/mutation/modules.toml (or given on the command line) this copies
the work tree into .mutation/NAME/, configures mutmut there to mutate that one file and to run
only that module's tests, runs it, and prints the score: killed / (mutants - known equivalents).
Survivors that tests/mutation/equivalent.toml lists (matched by function and by the change itself,
not by mutmut's numbering, which shifts when code moves) are shown as equivalent with the reason;
any other survivor is printed with its diff. Exits 1 if a module scores below the threshold.

Run it through .ci/mutation, which installs mutmut and runs this at the lowest CPU priority.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "mutation" / "modules.toml"
EQUIVALENT = ROOT / "tests" / "mutation" / "equivalent.toml"
SCRATCH = ROOT / ".mutation"
PACKAGES = ["devices", "session", "traction", "simulators"]
# How each mutmut verdict counts. Timeouts and kills by signal are hangs or crashes the tests caught.
KILLED = {"killed", "timeout", "segfault", "caught by type check"}
NOT_RUN = {"skipped"}


@dataclass
class Module:
    name: str
    source: str
    tests: list[str]
    gate: bool = True  # below the threshold fails the run (False: reported only, see TESTING.md)


@dataclass
class Survivor:
    key: str
    status: str
    diff: str
    why: str | None = None


@dataclass
class Score:
    module: Module
    total: int = 0
    killed: int = 0
    survivors: list[Survivor] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0  # CPU seconds of mutmut and its tests: the time on an idle core

    @property
    def equivalent(self) -> int:
        return sum(1 for s in self.survivors if s.why is not None)

    @property
    def score(self) -> float:
        judged = self.total - self.equivalent
        return 1.0 if judged <= 0 else self.killed / judged


def load_modules() -> tuple[dict[str, Module], float]:
    data = tomllib.loads(CONFIG.read_text())
    modules = {
        name: Module(name, spec["source"], list(spec["tests"]), bool(spec.get("gate", True)))
        for name, spec in data["modules"].items()
    }
    return modules, float(data["threshold"])


def _norm(line: str) -> str:
    return " ".join(line.split())


def change_of(diff: str) -> list[str]:
    """The removed and added lines of a mutant's diff, whitespace-normalised: what identifies it."""
    return [
        line[0] + _norm(line[1:])
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def load_equivalents() -> list[dict[str, object]]:
    if not EQUIVALENT.exists():
        return []
    entries: list[dict[str, object]] = tomllib.loads(EQUIVALENT.read_text()).get("equivalent", [])
    for entry in entries:
        entry["_change"] = change_of(str(entry["change"]))
    return entries


def load_rules() -> list[tuple[re.Pattern[str], str]]:
    """Kinds of change that are equivalent wherever they occur (``[[rule]]`` in equivalent.toml):
    a mutant is one when every line it removes or adds matches the rule's pattern."""
    if not EQUIVALENT.exists():
        return []
    rules = tomllib.loads(EQUIVALENT.read_text()).get("rule", [])
    return [(re.compile(str(rule["lines"])), str(rule["why"])) for rule in rules]


def rule_for(change: list[str], rules: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, why in rules:
        if change and all(pattern.search(line[1:]) for line in change):
            return why
    return None


def function_of(key: str) -> str:
    return re.sub(r"__mutmut_\d+$", "", key)


def changed_modules(modules: dict[str, Module], ref: str) -> list[str]:
    """Modules whose source or tests differ between ``ref`` and HEAD (all if the set-up changed)."""
    out = subprocess.run(
        ["git", "diff", "--name-only", ref, "HEAD"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    changed = set(out)
    if changed & {"tests/mutation/modules.toml", ".ci/mutation.py", "tests/conftest.py"}:
        return list(modules)
    return [m.name for m in modules.values() if m.source in changed or changed & set(m.tests)]


def prepare(module: Module) -> Path:
    """A fresh copy of the work tree (tracked and new files) configured to mutate one file."""
    work = SCRATCH / module.name
    shutil.rmtree(work, ignore_errors=True)
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = Path(os.fsdecode(raw))
        if not (ROOT / rel).is_file():
            continue  # deleted in the work tree but still in the index
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, work / rel)
    pyproject = work / "pyproject.toml"
    text = pyproject.read_text().split("\n[tool.mutmut]")[0]
    # SQLite only: the logic under mutation is the same on both backends, and the regular suite
    # runs every database test on PostgreSQL too. Stop at the first failure: a kill is a kill.
    # Fastest tests first (tests/mutation/fastest_first.py), so most kills cost a quick test.
    pytest_args = ["-x", "-q", "-p", "no:cacheprovider", "-p", "fastest_first"]
    pytest_args += ["--timeout=30", "-m", "not postgres"]
    shutil.copy2(ROOT / "tests" / "mutation" / "fastest_first.py", work / "fastest_first.py")
    pyproject.write_text(
        text
        + "\n[tool.mutmut]\n"
        + f"source_paths = {json.dumps(PACKAGES)}\n"
        + f"only_mutate = {json.dumps([module.source])}\n"
        + 'also_copy = ["configs", "bench", "fastest_first.py"]\n'
        + f"pytest_add_cli_args_test_selection = {json.dumps(module.tests)}\n"
        + f"pytest_add_cli_args = {json.dumps(pytest_args)}\n"
        # A mutant that makes a test spin is a kill; five times the tests' usual time (CPU
        # seconds, which load does not inflate) is plenty to tell it from a slow pass.
        + "timeout_multiplier = 5.0\n"
    )
    return work


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_module(
    module: Module,
    jobs: int,
    equivalents: list[dict[str, object]],
    rules: list[tuple[re.Pattern[str], str]],
) -> Score:
    work = prepare(module)
    mutmut = Path(sys.executable).parent / "mutmut"
    log = work / "mutmut.log"
    started = time.monotonic()
    cpu_before = _children_cpu()
    with log.open("w") as out:
        proc = subprocess.run(
            [str(mutmut), "run", "--max-children", str(jobs)],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    score = Score(module, seconds=time.monotonic() - started, cpu=_children_cpu() - cpu_before)
    meta = work / "mutants" / (module.source + ".meta")
    if proc.returncode != 0 or not meta.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"mutmut failed on {module.source} (exit {proc.returncode}):\n{tail}")
    results = json.loads(meta.read_text())["exit_code_by_key"]

    sys.path.insert(0, str(work))  # mutmut reads its state relative to the working directory
    cwd = Path.cwd()
    os.chdir(work)
    try:
        from mutmut.configuration import reset_config
        from mutmut.mutation.diff_apply import get_diff_for_mutant
        from mutmut.stats import status_by_exit_code

        reset_config()
        for key, code in sorted(results.items()):
            status = status_by_exit_code[code]
            if status in NOT_RUN:
                continue
            score.total += 1
            if status in KILLED:
                score.killed += 1
                continue
            diff = get_diff_for_mutant(key, path=module.source)
            survivor = Survivor(key, status, diff)
            change = change_of(diff)
            for entry in equivalents:
                if entry["function"] == function_of(key) and entry["_change"] == change:
                    survivor.why = str(entry["why"])
                    break
            else:
                survivor.why = rule_for(change, rules)
            score.survivors.append(survivor)
    finally:
        os.chdir(cwd)
        sys.path.remove(str(work))
    return score


def report(score: Score, threshold: float, show_equivalent: bool) -> None:
    m = score.module
    unexplained = [s for s in score.survivors if s.why is None]
    verdict = "ok" if score.score >= threshold else "BELOW THRESHOLD"
    if not m.gate and score.score < threshold:
        verdict += " (not gated yet)"
    print(
        f"mutation {m.name:<10} {m.source:<22} {score.killed:>4} killed of {score.total:>4} "
        f"({score.equivalent} equivalent, {len(unexplained)} surviving): "
        f"{100 * score.score:5.1f}% {verdict}  [{score.seconds:.0f} s, {score.cpu:.0f} CPU s; tests: {' '.join(m.tests)}]"
    )
    for s in unexplained:
        print(f"  surviving {s.key} ({s.status})")
        for line in s.diff.splitlines()[2:]:
            print(f"    {line}")
    if show_equivalent:
        for s in score.survivors:
            if s.why is not None:
                print(f"  equivalent {s.key}: {s.why}")


def main(argv: list[str] | None = None) -> int:
    modules, threshold = load_modules()
    parser = argparse.ArgumentParser(
        description="Mutation-test the safety and billing modules, each with its own tests only.",
        epilog="Examples: .ci/mutation supervisor limits   |   .ci/mutation --changed-since HEAD^",
    )
    parser.add_argument(
        "names", nargs="*", help=f"modules to run (default all): {', '.join(modules)}"
    )
    parser.add_argument(
        "--changed-since",
        metavar="REF",
        help="only modules whose source or tests changed since REF",
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument(
        "--show-equivalent", action="store_true", help="also list equivalent survivors and why"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in modules]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(modules)}")
    names = args.names or list(modules)
    if args.changed_since:
        touched = changed_modules(modules, args.changed_since)
        names = [n for n in names if n in touched]
        if not names:
            print(f"mutation: no mutation-tested module changed since {args.changed_since}")
            return 0
    equivalents, rules = load_equivalents(), load_rules()
    failed = []
    for name in names:
        score = run_module(modules[name], args.jobs, equivalents, rules)
        report(score, threshold, args.show_equivalent)
        if score.score < threshold and modules[name].gate:
            failed.append(name)
    if failed:
        print(f"mutation: below {100 * threshold:.0f}% killed: {', '.join(failed)}")
        return 1
    print(
        f"mutation: every gated module at or above {100 * threshold:.0f}% killed ({', '.join(names)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
