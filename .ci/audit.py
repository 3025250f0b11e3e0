"""CI: ask pip-audit whether a published advisory names a release hookhub runs or tests with.

Run with the Python of the environment to audit (``.venv/bin/python .ci/audit.py PIP_AUDIT``); pip-audit
itself lives in an environment of its own, so that neither it nor its dependencies are installed
beside hookhub's or audited as if they were hookhub's. What is audited is hookhub's dependencies, with
its test extra's, at the versions installed: not pip and setuptools, which come with the environment.

Exit status 1 when the advisory service names a vulnerability in one of them. A package the service
gave no answer for (unreachable, or no record of that release) is listed as not audited and does
not fail the run: CI must not stop for the service's sake, and tests/test_dependency_floors.py keeps
pyproject's floors above the advisories known when they were set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = "hookhub"
EXTRAS = ("test",)
TIMEOUT = 600  # seconds for the whole audit: a hung service must not hold CI until its own limit


def installed_closure(root: str = ROOT, extras: tuple[str, ...] = EXTRAS) -> dict[str, str]:
    """Every distribution ``root`` (with ``extras``) requires, directly or not, with its installed version."""
    found: dict[str, str] = {}
    walked: set[tuple[str, str]] = set()
    todo = [(root, extra) for extra in ("", *extras)]
    while todo:
        name, extra = todo.pop()
        if (canonicalize_name(name), extra) in walked:
            continue
        walked.add((canonicalize_name(name), extra))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # required only where a marker says, and not installed here
        if canonicalize_name(name) != root:
            found[canonicalize_name(name)] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
                continue
            todo += [(requirement.name, e) for e in ("", *requirement.extras)]
    return found


def main(pip_audit: str) -> int:
    pins = installed_closure()
    with tempfile.TemporaryDirectory() as folder:
        requirements, report = os.path.join(folder, "requirements.txt"), os.path.join(folder, "audit.json")
        with open(requirements, "w") as handle:
            handle.writelines(f"{name}=={version}\n" for name, version in sorted(pins.items()))
        started = time.monotonic()
        try:
            # --no-deps --disable-pip: exactly these releases, resolved and installed nowhere.
            done = subprocess.run([pip_audit, "-r", requirements, "--no-deps", "--disable-pip", "--progress-spinner",
                                   "off", "--format", "json", "--output", report], capture_output=True, text=True,
                                  timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"audit: pip-audit gave no answer in {TIMEOUT} s: {len(pins)} dependencies NOT audited")
            return 0
        took = time.monotonic() - started
        try:
            with open(report) as handle:
                answer = json.load(handle)
        except (OSError, ValueError):
            print(f"audit: pip-audit failed (status {done.returncode}): {len(pins)} dependencies NOT audited")
            print(done.stderr.strip())
            return 0
    vulnerable, unanswered = [], []
    for dependency in answer.get("dependencies", []):
        if dependency.get("skip_reason"):
            unanswered.append(f"{dependency['name']}: {dependency['skip_reason']}")
        for vuln in dependency.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
            aliases = ", ".join(vuln.get("aliases") or [])
            vulnerable.append(f"{dependency['name']} {dependency.get('version', '')}: {vuln.get('id')}"
                              f"{f' ({aliases})' if aliases else ''}, fixed in {fixed}")
    audited = len(pins) - len(unanswered)
    print(f"audit: {audited} of {len(pins)} dependencies audited by pip-audit in {took:.1f} s")
    if unanswered:
        print(f"audit: WARNING: the advisory service gave no answer for {len(unanswered)} of them, "
              f"which are NOT audited:")
        print("\n".join(f"  {line}" for line in unanswered))
    if vulnerable:
        print("audit: FAIL: published advisories name releases installed here; raise their floors in "
              "pyproject.toml (and in tests/test_dependency_floors.py):")
        print("\n".join(f"  {line}" for line in vulnerable))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
