"""Audit the installed Python packages and the web app's npm packages.

    python scripts/audit.py            # fail on a known vulnerability
    python scripts/audit.py --strict   # also fail when an audit could not run

pip-audit looks up each installed package in PyPI's vulnerability data, and
`npm audit` sends web/'s lock file to the npm registry's advisory service.
Any known vulnerability of a Python package fails the audit (PyPI gives no
severity). For npm, only high and critical ones do. A package the service
does not know, or a service that cannot be reached, is only reported. With
--strict it fails the audit too, which needs network access to both
services.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FAILING_NPM_SEVERITIES = ("high", "critical")
SHOWN_UNCHECKED = 10


@dataclass
class AuditResult:
    name: str
    checked: int = 0
    vulnerable: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    error: str | None = None

    def failed(self, strict: bool) -> bool:
        if self.vulnerable:
            return True
        return strict and (self.error is not None or bool(self.unchecked))


def read_pip_audit(report: dict[str, Any]) -> AuditResult:
    """Summarise the JSON of ``pip-audit --format json``."""
    result = AuditResult("Python packages")
    for dependency in report.get("dependencies", []):
        name = f"{dependency.get('name')} {dependency.get('version', '')}".strip()
        if "skip_reason" in dependency:
            # Editable installs (this project) are skipped on purpose.
            if "editable" not in str(dependency["skip_reason"]):
                result.unchecked.append(name)
            continue
        result.checked += 1
        for vulnerability in dependency.get("vulns", []):
            fixed = ", ".join(vulnerability.get("fix_versions") or []) or "none"
            result.vulnerable.append(
                f"{name}: {vulnerability.get('id')} (fixed in {fixed})"
            )
    return result


def read_npm_audit(report: dict[str, Any]) -> AuditResult:
    """Summarise the JSON of ``npm audit --json`` (npm 7 and newer)."""
    result = AuditResult("web app npm packages")
    if "vulnerabilities" not in report:
        # npm prints the failed request instead of a report when the advisory
        # service rejects it.
        result.error = str(report.get("message") or report.get("error") or report)
        return result
    counts = report.get("metadata", {}).get("dependencies", {})
    result.checked = int(counts.get("total", 0))
    for name, entry in sorted(report["vulnerabilities"].items()):
        severity = entry.get("severity")
        if severity in FAILING_NPM_SEVERITIES:
            result.vulnerable.append(f"{name}: {severity} ({entry.get('range', '')})")
    return result


def run_pip_audit() -> AuditResult:
    pip_audit = REPO / ".venv" / "bin" / "pip-audit"
    if not pip_audit.exists():
        return AuditResult("Python packages", error=f"{pip_audit} is not installed")
    completed = subprocess.run(
        [str(pip_audit), "--skip-editable", "--format", "json",
         "--progress-spinner", "off"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        return read_pip_audit(json.loads(completed.stdout))
    except json.JSONDecodeError:
        message = completed.stderr.strip().splitlines()[-1:] or ["no output"]
        return AuditResult("Python packages", error=f"pip-audit failed: {message[0]}")


def run_npm_audit() -> AuditResult:
    npm = shutil.which("npm")
    if npm is None:
        return AuditResult("web app npm packages", error="npm is not installed")
    completed = subprocess.run(
        [npm, "audit", "--json"],
        cwd=REPO / "web", capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        return read_npm_audit(json.loads(completed.stdout))
    except json.JSONDecodeError:
        message = completed.stderr.strip().splitlines()[-1:] or ["no output"]
        return AuditResult(
            "web app npm packages", error=f"npm audit failed: {message[0]}"
        )


def report(result: AuditResult) -> None:
    print(
        f"{result.name}: {result.checked} checked, "
        f"{len(result.vulnerable)} with known vulnerabilities, "
        f"{len(result.unchecked)} unknown to the audit service"
    )
    for line in result.vulnerable:
        print(f"  vulnerable: {line}")
    if result.unchecked:
        listed = ", ".join(result.unchecked[:SHOWN_UNCHECKED])
        more = len(result.unchecked) - SHOWN_UNCHECKED
        print(f"  not checked: {listed}" + (f" and {more} more" if more > 0 else ""))
    if result.error:
        print(f"  audit did not run: {result.error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also fail when a package could not be checked or a service failed",
    )
    args = parser.parse_args()
    results = [run_pip_audit(), run_npm_audit()]
    for result in results:
        report(result)
    return 1 if any(result.failed(args.strict) for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
