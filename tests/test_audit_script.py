"""The dependency audit script's reading of pip-audit and npm audit reports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "audit.py"


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_script"] = module
    spec.loader.exec_module(module)
    return module


def test_pip_report_with_a_vulnerability(audit: ModuleType) -> None:
    report = {
        "dependencies": [
            {"name": "jinja2", "version": "3.1.2", "vulns": [
                {"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]},
            ]},
            {"name": "httpx", "version": "0.28.1", "vulns": []},
            {"name": "torah-study", "skip_reason": "distribution marked as editable"},
        ],
        "fixes": [],
    }  # fmt: skip
    result = audit.read_pip_audit(report)
    assert result.checked == 2
    assert result.vulnerable == ["jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)"]
    assert result.unchecked == []
    assert result.failed(strict=False)


def test_pip_report_of_unknown_packages(audit: ModuleType) -> None:
    reason = "Dependency not found on PyPI and could not be audited: uvicorn (0.55.0)"
    report = {"dependencies": [{"name": "uvicorn", "skip_reason": reason}]}
    result = audit.read_pip_audit(report)
    assert result.checked == 0
    assert result.unchecked == ["uvicorn"]
    assert not result.failed(strict=False)
    assert result.failed(strict=True)


def test_npm_report_fails_on_high_only(audit: ModuleType) -> None:
    report = {
        "auditReportVersion": 2,
        "vulnerabilities": {
            "postcss": {"name": "postcss", "severity": "moderate", "range": "<8.4.31"},
            "next": {"name": "next", "severity": "critical", "range": "<14.2.25"},
        },
        "metadata": {"dependencies": {"prod": 30, "dev": 300, "total": 330}},
    }
    result = audit.read_npm_audit(report)
    assert result.checked == 330
    assert result.vulnerable == ["next: critical (<14.2.25)"]
    assert result.failed(strict=False)


def test_npm_report_of_a_rejected_request(audit: ModuleType) -> None:
    message = (
        "405 Method Not Allowed - POST "
        "https://registry.npmjs.org/-/npm/v1/security/advisories/bulk"
    )
    report = {"message": message, "method": "POST", "statusCode": 405}
    result = audit.read_npm_audit(report)
    assert result.error == message
    assert not result.failed(strict=False)
    assert result.failed(strict=True)
