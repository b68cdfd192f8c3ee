"""The canary: a user ingested by ``pgen recommend --data ... --train`` (ML-100K files)
and deleted by ``pgen delete-user`` leaves no byte of their id in any file of the home.

It used to: the interactions' primary-key index, filled in file order (users mixed),
splits pages while it grows, and SQLite's page rebuild leaves the moved entries' old
bytes in the unallocated gap of the page. ``secure_delete`` zeroes only the live copy,
so ``canaryuser...194rate1998-03-31...`` outlived the delete in ``pgen.sqlite``.
"""

from __future__ import annotations

import random
from pathlib import Path

from pgen.cli.main import main
from tests.context.conftest import Backend, traces

CANARY = "canaryuser0451"


def write_ml100k(folder: Path, users: int = 30, per_user: int = 30, canary: int = 400) -> None:
    """``users`` users and the canary, their ratings in random order (as in ML-100K).
    With SQLite 3.40 and these sizes, the ingest leaves a stale copy of a canary entry in
    a page of the primary-key index (found by this very test before the fix)."""
    rng = random.Random(0)
    ids = [f"u{k}" for k in range(users) for _ in range(per_user)] + [CANARY] * canary
    start = 891_000_000  # 1998-03-27
    lines = [
        f"{user}\t{rng.randrange(1, 200)}\t{rng.randrange(1, 6)}\t{start + rng.randrange(10**6)}"
        for user in ids
    ]
    lines.append(f"{CANARY}\t194\t1\t891302400")  # 1998-03-31
    rng.shuffle(lines)
    folder.mkdir()
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    flags = "|".join("0" * 19)
    (folder / "u.item").write_text(
        "".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|{flags}\n" for i in range(1, 200))
    )


def test_recommend_ingest_then_delete_user_leaves_no_byte(
    backend: Backend, home: Path, tmp_path: Path
) -> None:
    data = tmp_path / "ml-100k"
    write_ml100k(data)
    base = backend.cli_args(home)
    assert main([*base, "recommend", "--model", "itemknn", "--data", str(data), "--train"]) == 0
    assert traces(backend, home, CANARY)  # the check can see them
    assert main([*base, "delete-user", CANARY]) == 0
    assert traces(backend, home, CANARY) == []


def test_ingest_then_delete_user_through_the_api_leaves_no_byte(
    backend: Backend, home: Path, tmp_path: Path
) -> None:
    from pgen.recommend.data import ingest, load_data

    data = tmp_path / "ml-100k"
    write_ml100k(data)
    store = backend.open(home)
    try:
        ingest(store, load_data(data))
        store.delete_user(CANARY)
        assert traces(backend, home, CANARY) == []
    finally:
        store.close()
    assert traces(backend, home, CANARY) == []
