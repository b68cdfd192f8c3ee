"""Concurrency: one store used from many threads, and many processes on one store file.

Eight threads, one user each with a canary word in every document, interleave failing
and succeeding ingest batches, BM25 and dense retrieval (their own user's and another
user's) and generation with a tiny Llama. Checked: no write lost, no part of a failed
batch ever visible, every ranking equal to a single-threaded one, no other user's canary
in any output, prompt or provenance. Then separate ``pgen ingest`` processes into one
store, and twenty processes opening a new store at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pgen.context import Document, Interaction, Record
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.models.base import AdapterRef, GenerationSettings, Message
from pgen.models.text import TransformersTextModel
from pgen.usermodel import retrievers as retrievers_module
from pgen.usermodel.bm25 import Bm25Index
from pgen.usermodel.dense import DenseIndex
from pgen.usermodel.retrievers import index_text

THREADS = 8
ROUNDS = 4
BATCH = 12
VOCAB = ["apple", "river", "stone", "garden", "violin", "copper", "meadow", "lantern", "harbor"]
PGEN = Path(sys.executable).parent / "pgen"


class HashEmbedder:
    """A deterministic bag-of-words embedder: each word hashed to a dimension."""

    model_id = "hash-bow#1"
    dim = 64

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def canary(user: str) -> str:
    return f"canary{user}zz"


def batch_docs(user: str, round_: int) -> list[Document]:
    rng = random.Random(f"{user}/{round_}")
    return [
        Document(
            user_id=user,
            doc_id=f"{user}-r{round_}-{j}",
            text=" ".join([canary(user), *rng.choices(VOCAB, k=6)]),
        )
        for j in range(BATCH)
    ]


def reference_bm25(documents: list[Document], query: str) -> list[tuple[str, float]]:
    index = Bm25Index()
    index.add_many([(d.doc_id, index_text(d)) for d in documents])
    return _canonical(index.search(query, 10_000))


def reference_dense(documents: list[Document], query: str) -> list[tuple[str, float]]:
    embedder = HashEmbedder()
    index = DenseIndex(embedder.dim)
    index.add_many([d.doc_id for d in documents], list(embedder.embed([d.text for d in documents])))
    return _canonical(index.search(embedder.embed([query])[0], 10_000))


def _canonical(hits: list[tuple[str, float]]) -> list[tuple[str, float]]:
    # Equal scores may come in another order: compare (score, id) sorted.
    return sorted(
        ((doc_id, round(score, 4)) for doc_id, score in hits), key=lambda h: (-h[1], h[0])
    )


def test_threads_lose_no_write_see_no_partial_batch_and_rank_as_one_thread(
    tmp_path: Path, tiny_model: TransformersTextModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Snapshots after a few changes, so threads also save (and prune) BM25 snapshots.
    monkeypatch.setattr(retrievers_module, "SNAPSHOT_AFTER", 5)
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    engine = Engine(store, tiny_model, HashEmbedder(), prompt_tokens=400)
    users = [f"u{i}" for i in range(THREADS)]
    problems: list[str] = []
    rankings: list[tuple[str, str, int, str, list[tuple[str, float]]]] = []
    generations = []
    start = threading.Barrier(THREADS)

    def work(position: int) -> None:
        user = users[position]
        other = users[(position + 1) % THREADS]
        rng = random.Random(position)
        start.wait()
        for round_ in range(ROUNDS):
            # A batch that fails halfway (an interaction with an unknown item): nothing
            # of it may be written, or seen by anyone while it runs.
            failing: list[Record] = list(batch_docs(user, round_ + 100))
            failing.insert(BATCH // 2, Interaction(user_id=user, item_id="no-such-item"))
            try:
                store.add(failing)
                problems.append(f"{user}: a failing batch was accepted")
            except Exception:  # the point: it fails, and leaves nothing
                pass
            store.add(batch_docs(user, round_))
            for retriever in ("bm25", "dense"):
                query = " ".join(rng.sample(VOCAB, 2))
                hits = engine.retrievers.get(retriever).retrieve(user, query, 10_000)
                found = _canonical([(h.doc_id, h.score) for h in hits])
                rankings.append((user, retriever, round_, query, found))
                # Another user's index, while that user's thread may be catching it up.
                if not store.has_user(other):
                    continue
                for hit in engine.retrievers.get(retriever).retrieve(other, query, 50):
                    if not hit.doc_id.startswith(f"{other}-"):
                        problems.append(f"{other}'s ranking has {hit.doc_id}")
            seen = store.documents(other)
            if len(seen) % BATCH:
                problems.append(f"{user} saw {len(seen)} documents of {other}: a partial batch")
            if any(int(d.doc_id.split("-r")[1].split("-")[0]) >= 100 for d in seen):
                problems.append(f"{user} saw a document of a failed batch of {other}")
            generation = engine.generate(
                user,
                f"write about {rng.choice(VOCAB)}",
                k=3,
                retriever="bm25",
                generation=GenerationSettings(max_new_tokens=3),
            )
            generations.append(generation)

    def guarded(position: int) -> None:
        try:
            work(position)
        except Exception as error:
            problems.append(f"{users[position]}: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert problems == []

    # No write lost, nothing of a failed batch.
    for user in users:
        expected = {d.doc_id for r in range(ROUNDS) for d in batch_docs(user, r)}
        assert {d.doc_id for d in store.documents(user)} == expected
    # Every ranking equals the single-threaded one over the documents of that moment
    # (a user's documents are written only by their own thread, in order).
    assert len(rankings) == THREADS * ROUNDS * 2
    for user, retriever, round_, query, found in rankings:
        documents = [d for r in range(round_ + 1) for d in batch_docs(user, r)]
        reference = reference_bm25 if retriever == "bm25" else reference_dense
        assert found == reference(documents, query), (user, retriever, round_, query)
    # No other user's token in any output, prompt or provenance.
    assert len(generations) == THREADS * ROUNDS
    for generation in generations:
        others = [canary(u) for u in users if u != generation.user_id]
        shown = json.dumps(
            [generation.text, str(generation.prompt), generation.provenance.as_dict()]
        )
        assert not any(token in shown for token in others), generation.user_id
        assert all(d.startswith(f"{generation.user_id}-") for d in generation.provenance.documents)
        assert generation.provenance.documents  # rag used the user's documents
    for user in users:
        for output in store.outputs(user):
            assert not any(canary(u) in json.dumps(output.provenance) for u in users if u != user)
    store.close()


def _jsonl(path: Path, user: str, count: int) -> Path:
    lines = [
        json.dumps({"type": "document", "user_id": user, "doc_id": f"d{i}", "text": f"t {i}"})
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_concurrent_pgen_ingest_processes_all_succeed(tmp_path: Path) -> None:
    store_path = tmp_path / "shared.sqlite"
    files = [_jsonl(tmp_path / f"p{i}.jsonl", f"p{i}", 3000) for i in range(6)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(
            [str(PGEN), "--store", str(store_path), "ingest", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for path in files
    ]
    results = [p.communicate(timeout=180) for p in processes]
    failures = [
        err.decode() for p, (_, err) in zip(processes, results, strict=True) if p.returncode
    ]
    assert failures == []
    with SQLiteStore(store_path) as store:
        assert {u.user_id: u.documents for u in store.users()} == {f"p{i}": 3000 for i in range(6)}


OPEN_SCRIPT = """
import sys, time
from pathlib import Path
from pgen.context.sqlite import SQLiteStore
Path(sys.argv[2]).touch()  # imported, ready to open
while not Path(sys.argv[3]).exists():  # every process is: go
    time.sleep(0.001)
with SQLiteStore(sys.argv[1]) as store:
    print(store.schema_version)
"""


def test_twenty_processes_opening_a_new_store_at_once(tmp_path: Path) -> None:
    store_path = tmp_path / "new" / "pgen.sqlite"
    ready = [tmp_path / f"ready-{n}" for n in range(20)]
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_SCRIPT, str(store_path), str(flag), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for flag in ready
    ]
    # All imported, then all open together (the deadline only keeps a failure from hanging).
    deadline = time.monotonic() + 300
    while not all(flag.exists() for flag in ready):
        exited = [p.returncode for p in processes if p.poll() is not None]
        assert not exited and time.monotonic() < deadline, exited
        time.sleep(0.01)
    go.touch()
    results = [p.communicate(timeout=120) for p in processes]
    errors = [
        err.decode()[-300:] for p, (_, err) in zip(processes, results, strict=True) if p.returncode
    ]
    assert errors == []
    versions = {out.decode().strip() for out, _ in results}
    with SQLiteStore(store_path) as store:
        assert versions == {str(store.schema_version)}


def _random_lora(base: Path, folder: Path, seed: int) -> Path:
    """A LoRA adapter in plain PEFT format with random (non-zero) weights: each user's
    adapter changes the greedy output in its own way."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = LoraConfig(
        r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), config).save_pretrained(str(folder))
    return folder


def test_concurrent_requests_never_get_another_users_adapter(
    tiny_llama: Path, tmp_path: Path
) -> None:
    model = TransformersTextModel(str(tiny_llama), name="tiny-llama", batch_size=4)
    refs: list[AdapterRef | None] = [None] + [
        AdapterRef("lora", f"lora-u{i}", _random_lora(tiny_llama, tmp_path / f"u{i}", i))
        for i in range(THREADS - 1)
    ]
    greedy = GenerationSettings(max_new_tokens=6)
    chat = [Message("user", "write a review of the battery")]
    # Single-threaded references, one request at a time.
    expected = [model.generate([chat], greedy, [ref])[0] for ref in refs]
    assert len(set(expected)) >= THREADS // 2  # adapters really change the output
    problems: list[str] = []
    start = threading.Barrier(THREADS)

    def work(position: int) -> None:
        start.wait()
        for _ in range(3):
            got = model.generate([chat], greedy, [refs[position]])[0]
            if got != expected[position]:
                problems.append(f"request {position} got {got!r}, expected {expected[position]!r}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert problems == []


WAIT = 60.0


def test_reads_and_retrieval_do_not_wait_for_a_writer_holding_the_lock(tmp_path: Path) -> None:
    # A read that waited for the lock would wait all of WAIT (the writer never lets go) and
    # then fail: far longer than any read takes, however busy the machine.
    store = SQLiteStore(tmp_path / "pgen.sqlite", busy_timeout=WAIT, write_wait=WAIT)
    store.add(batch_docs("u0", 0))
    engine_retrievers = retrievers_module.Retrievers(store, HashEmbedder)
    for name in ("bm25", "dense"):
        engine_retrievers.get(name).retrieve("u0", "apple", 3)  # embedded and indexed
    store.add(batch_docs("u0", 1))  # new documents to catch up with, while locked
    store.put_embeddings(
        "u0",
        HashEmbedder.model_id,
        [
            (d.doc_id, d.content_hash, HashEmbedder().embed([d.text])[0])
            for d in batch_docs("u0", 1)
        ],
    )
    writer = SQLiteStore(store.path)  # another process in the middle of a long ingest
    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with writer.transaction():
            held.set()
            release.wait(2 * WAIT)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert held.wait(30)
    started = time.monotonic()
    assert len(store.documents("u0")) == 2 * BATCH
    for name in ("bm25", "dense"):
        assert len(engine_retrievers.get(name).retrieve("u0", "apple river", 100)) > BATCH
    assert time.monotonic() - started < WAIT  # no wait for the lock
    release.set()
    holder.join()
    writer.close()
    store.close()
