"""pyproject's version floors stay above the releases that published advisories name.

CI's pip-audit (.ci/audit.py) checks what is installed, when its advisory service answers; this
checks what pyproject lets a fresh install choose, with no service at all. Raise a minimum here
when an advisory names a release above it, with the advisory that says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

# name: (the lowest release no published advisory names, the advisories below it)
AUDITED_MINIMUMS = {
    "flask": ("3.1.3", "CVE-2026-27205 session read without Vary: Cookie (3.1.3); CVE-2025-47278 "
                       "fallback keys sign (3.1.1)"),
    "werkzeug": ("3.1.6", "CVE-2026-27199, CVE-2026-21860, CVE-2025-66221 safe_join and Windows devices "
                          "(3.1.6, 3.1.5, 3.1.4); CVE-2024-49767 multipart exhaustion (3.0.6); "
                          "CVE-2024-34069 debugger code execution (3.0.3)"),
    "jinja2": ("3.1.6", "CVE-2025-27516 sandbox escape through |attr (3.1.6); CVE-2024-56201, "
                        "CVE-2024-56326 (3.1.5); CVE-2024-34064 xmlattr keys (3.1.4)"),
    "itsdangerous": ("2.2", "no advisory; the release Flask 3.1 requires"),
    "requests": ("2.33", "CVE-2026-25645 predictable temporary file (2.33.0); CVE-2024-47081 .netrc "
                         "credentials leak (2.32.4); CVE-2024-35195 verify=False sticks to a session (2.32.0)"),
    "urllib3": ("2.7", "CVE-2026-44431 headers forwarded across origins, CVE-2026-44432 decompression bomb "
                       "(2.7.0); CVE-2026-21441 (2.6.3); CVE-2025-66418, CVE-2025-66471 (2.6.0)"),
    "gunicorn": ("23", "CVE-2024-6827 request smuggling through Transfer-Encoding (23.0.0); CVE-2024-1135 "
                       "(22.0.0)"),
    "pytest": ("9.0.3", "CVE-2025-71176 predictable /tmp/pytest-of-<user> (9.0.3)"),
}


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    texts = [*project["dependencies"], *(t for extra in project["optional-dependencies"].values() for t in extra)]
    return {canonicalize_name(r.name): r for r in map(Requirement, texts)}


def _floor(requirement: Requirement) -> Version | None:
    """The lowest version the requirement can take by its specifiers, None when nothing bounds it below."""
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", ">", "==", "~=", "===")]
    return max(floors, default=None)


@pytest.mark.parametrize("name", sorted(AUDITED_MINIMUMS))
def test_the_floor_is_above_every_known_advisory(name):
    minimum, why = AUDITED_MINIMUMS[name]
    requirement = _requirements().get(name)
    assert requirement is not None, f"pyproject.toml must name {name} itself, so its floor holds: {why}"
    floor = _floor(requirement)
    assert floor is not None and floor >= Version(minimum), (
        f"pyproject.toml allows {requirement}, below {name} {minimum}: {why}")
