from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import bm25s
import numpy as np
import pytest
import Stemmer

from pgen.context import Document
from pgen.context.sqlite import SQLiteStore
from pgen.models.base import Embedder
from pgen.models.embedding import folder_fingerprint
from pgen.usermodel import Retrievers
from pgen.usermodel import retrievers as retrievers_module
from pgen.usermodel.bm25 import Bm25Index, tokenize
from pgen.usermodel.dense import DenseIndex
from tests.core.conftest import docs

WORDS = [
    "apple",
    "river",
    "stone",
    "music",
    "engine",
    "garden",
    "winter",
    "coffee",
    "novel",
    "python",
    "market",
    "ocean",
]


def random_corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for _ in range(n)]


def test_bm25_scores_equal_a_bm25s_index_built_from_scratch() -> None:
    corpus = random_corpus(200)
    ours = Bm25Index()
    for i, text in enumerate(corpus):
        ours.add(str(i), text)
    stemmer = Stemmer.Stemmer("english")
    reference = bm25s.BM25()
    reference.index(
        bm25s.tokenize(corpus, stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    for query in ["apple river", "python coffee novel", "winter"]:
        tokens = bm25s.tokenize(
            [query], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
        )[0]
        all_scores = reference.get_scores(tokens)
        hits = ours.search(query, 10)
        assert [s for _, s in hits] == pytest.approx(
            sorted(all_scores, reverse=True)[:10], rel=1e-5
        )
        for doc_id, score in hits:  # ties may be ordered differently; each score must match
            assert score == pytest.approx(float(all_scores[int(doc_id)]), rel=1e-5)


def test_bm25_incremental_add_and_remove_equal_a_rebuild() -> None:
    corpus = random_corpus(120, seed=1)
    incremental = Bm25Index()
    for i, text in enumerate(corpus):
        incremental.add(str(i), text)
    for i in range(0, 120, 3):
        incremental.remove(str(i))
    incremental.add("5", "apple apple river")  # an edit replaces the old copy
    rebuilt = Bm25Index()
    for i, text in enumerate(corpus):
        if i % 3 and i != 5:
            rebuilt.add(str(i), text)
    rebuilt.add("5", "apple apple river")
    assert len(incremental) == len(rebuilt)
    assert incremental.mean_length == pytest.approx(rebuilt.mean_length)  # live documents only
    live = [t for i, t in enumerate(corpus) if i % 3 and i != 5] + ["apple apple river"]
    assert rebuilt.mean_length == pytest.approx(sum(len(tokenize(t)) for t in live) / len(live))
    for query in ["apple", "stone music", "garden ocean engine"]:
        got = dict(incremental.search(query, 20))
        want = dict(rebuilt.search(query, 20))
        assert got.keys() == want.keys()
        for doc_id in got:
            assert got[doc_id] == pytest.approx(want[doc_id], rel=1e-5)


def test_a_bm25_index_restored_from_its_arrays_equals_the_original() -> None:
    corpus = random_corpus(60, seed=2)
    index = Bm25Index(k1=1.2, b=0.7)
    for i, text in enumerate(corpus):
        index.add(str(i), text)
    for i in range(0, 60, 4):
        index.remove(str(i))  # tombstones travel too
    index.add('doc with\nodd "id"', "apple apple ocean")
    restored = Bm25Index.from_arrays(index.to_arrays())
    for step in ("restored", "after more changes"):
        assert len(restored) == len(index), step
        for query in ["apple", "stone music", "garden ocean engine", "absent"]:
            assert restored.search(query, 10) == index.search(query, 10), (step, query)
        if step == "restored":
            for copy in (index, restored):  # both must keep changing in the same way
                copy.add("new", "river river stone")
                copy.remove("1")


def test_dense_add_many_equals_adds_one_by_one() -> None:
    rng = np.random.default_rng(0)
    vectors = [v / np.linalg.norm(v) for v in rng.normal(size=(40, 8)).astype(np.float32)]
    ids = [f"d{i % 30}" for i in range(40)]  # ten ids twice: the later vector wins
    one_by_one, at_once = DenseIndex(8), DenseIndex(8)
    for doc_id, vector in zip(ids, vectors, strict=True):
        one_by_one.add(doc_id, vector)
    at_once.add_many(ids, vectors)
    assert len(at_once) == len(one_by_one) == 30
    for vector in vectors[:5]:
        got, want = at_once.search(vector, 30), one_by_one.search(vector, 30)
        assert [d for d, _ in got] == [d for d, _ in want]
        assert [x for _, x in got] == pytest.approx([x for _, x in want])


def test_dense_index_ranks_by_cosine_and_forgets_removed() -> None:
    index = DenseIndex(2)
    index.add("east", np.array([1.0, 0.0], dtype=np.float32))
    index.add("north", np.array([0.0, 1.0], dtype=np.float32))
    index.add("west", np.array([-1.0, 0.0], dtype=np.float32))
    query = np.array([0.8, 0.6], dtype=np.float32)
    assert [d for d, _ in index.search(query, 3)] == ["east", "north", "west"]
    index.remove("east")
    assert [d for d, _ in index.search(query, 3)] == ["north", "west"]
    with pytest.raises(ValueError, match="index is 2-d"):
        index.add("bad", np.zeros(3, dtype=np.float32))


def test_bm25_retriever_follows_the_store(store: SQLiteStore) -> None:
    store.add(docs("u", "the cat sat on the mat", "stock markets fell sharply"))
    retrievers = Retrievers(store, embedder=lambda: pytest.fail("bm25 needs no embedder"))
    bm25 = retrievers.get("bm25")
    assert [h.doc_id for h in bm25.retrieve("u", "cat", 5)] == ["d0"]
    store.add([Document(user_id="u", doc_id="d2", text="my cat loves tuna")])
    assert {h.doc_id for h in bm25.retrieve("u", "cat", 5)} == {"d0", "d2"}
    store.delete_documents("u", ["d0"])
    assert [h.doc_id for h in bm25.retrieve("u", "cat", 5)] == ["d2"]
    store.add([Document(user_id="u", doc_id="d0", text="a cat again")])  # deleted, then back
    assert {h.doc_id for h in bm25.retrieve("u", "cat", 5)} == {"d0", "d2"}
    assert len(bm25.index("u")) == 3


def test_an_index_kept_by_another_process_is_rebuilt_for_a_user_created_again(
    store: SQLiteStore,
) -> None:
    # ``Engine.delete_user`` makes its own process forget; a second process (here another
    # Retrievers over the same file) only learns it from the store.
    store.add(docs("u", "my cat sleeps all day", "cat food prices"))
    other = Retrievers(SQLiteStore(store.path), embedder=lambda: pytest.fail("unused")).get("bm25")
    assert {h.doc_id for h in other.retrieve("u", "cat", 5)} == {"d0", "d1"}
    store.delete_user("u")
    # The new life reaches the same revision number as the old one: two changes.
    store.add(docs("u", "stocks and bonds", "the cat of my neighbour", prefix="n"))
    assert [h.doc_id for h in other.retrieve("u", "cat", 5)] == ["n1"]


def test_a_new_process_loads_the_saved_bm25_index_and_catches_up(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrievers_module, "SNAPSHOT_AFTER", 3)
    store.add(docs("u", "my cat sleeps", "cat food prices", "stock markets", "a cat again"))
    first = Retrievers(store, embedder=lambda: pytest.fail("unused")).get("bm25")
    expected = first.retrieve("u", "cat", 5)  # builds from 4 changes: saved
    assert ("index", "bm25") in store.artifacts("u")
    store.delete_documents("u", ["d0"])
    store.add([Document(user_id="u", doc_id="d9", text="the cat of my neighbour")])

    read: list[list[str]] = []
    real_documents = SQLiteStore.documents

    def counting(
        self: SQLiteStore, user_id: str, doc_ids: list[str] | None = None
    ) -> list[Document]:
        read.append(list(doc_ids or []))
        return real_documents(self, user_id, doc_ids)

    monkeypatch.setattr(SQLiteStore, "documents", counting)
    second = Retrievers(SQLiteStore(store.path), embedder=lambda: pytest.fail("unused")).get("bm25")
    hits = second.retrieve("u", "cat", 5)
    assert read == [["d9"]]  # only what changed since the save was read and tokenized
    assert {h.doc_id for h in hits} == {h.doc_id for h in expected} - {"d0"} | {"d9"}
    # A damaged file is not trusted: the next process rebuilds from the store.
    next(iter(store.artifacts("u").values())).joinpath("index.npz").write_bytes(b"torn")
    read.clear()
    third = Retrievers(SQLiteStore(store.path), embedder=lambda: pytest.fail("unused")).get("bm25")
    assert {h.doc_id for h in third.retrieve("u", "cat", 5)} == {h.doc_id for h in hits}
    assert sorted(read[0]) == ["d1", "d2", "d3", "d9"]
    store.delete_user("u")
    assert not list(store.artifacts_root.rglob("index.npz"))


def test_retrievers_never_cross_users(store: SQLiteStore) -> None:
    store.add(
        [*docs("alice", "alice likes jazz music"), *docs("bob", "bob likes jazz too", prefix="b")]
    )
    retriever = Retrievers(store, embedder=lambda: pytest.fail("unused")).get("bm25")
    assert [h.doc_id for h in retriever.retrieve("alice", "jazz", 10)] == ["d0"]
    assert [h.doc_id for h in retriever.retrieve("bob", "jazz", 10)] == ["b0"]


def test_recency_returns_newest(store: SQLiteStore) -> None:
    store.add(
        [
            Document(user_id="u", doc_id=f"d{m}", text="x", time=datetime(2024, m, 1))
            for m in (3, 1, 2)
        ]
    )
    retriever = Retrievers(store, embedder=lambda: pytest.fail("unused")).get("recency")
    assert [h.doc_id for h in retriever.retrieve("u", "anything", 2)] == ["d3", "d2"]


class CountingEmbedder:
    """The real MiniLM, counting how many texts it is asked to embed."""

    def __init__(self, inner: Embedder, dim: int | None = None, model_id: str = "") -> None:
        self.inner = inner
        self.model_id = model_id or inner.model_id
        self.dim = dim or inner.dim
        self.embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        vectors = self.inner.embed(texts)
        return vectors if self.dim == self.inner.dim else vectors[:, : self.dim]


def test_dense_retrieval_finds_meaning_and_embeds_each_document_once(
    store: SQLiteStore, minilm: Embedder
) -> None:
    texts = [
        "My puppy chewed my shoes again",
        "Quarterly revenue grew by ten percent",
        "Baking sourdough bread at home",
    ]
    store.add(docs("u", *texts))
    counting = CountingEmbedder(minilm)
    dense = Retrievers(store, embedder=lambda: counting).get("dense")
    assert dense.retrieve("u", "a young dog", 1)[0].doc_id == "d0"
    assert dense.retrieve("u", "company earnings", 1)[0].doc_id == "d1"
    assert counting.embedded == 3 + 2  # three documents once, plus two queries
    # A new engine over the same store reads the stored vectors instead of re-embedding.
    again = CountingEmbedder(minilm)
    Retrievers(store, embedder=lambda: again).get("dense").retrieve("u", "bread", 1)
    assert again.embedded == 1
    # An edited document is embedded again, the others are not.
    store.add([Document(user_id="u", doc_id="d2", text="Skiing in the Alps")])
    assert dense.retrieve("u", "snow sports", 1)[0].doc_id == "d2"
    assert counting.embedded == 5 + 1 + 1


def test_a_changed_dimension_re_embeds_instead_of_mixing(
    store: SQLiteStore, minilm: Embedder
) -> None:
    store.add(docs("u", "one text", "another text"))
    Retrievers(store, embedder=lambda: minilm).get("dense").retrieve("u", "text", 1)
    shrunk = CountingEmbedder(minilm, dim=16)  # same model id, other dimension
    hits = Retrievers(store, embedder=lambda: shrunk).get("dense").retrieve("u", "text", 2)
    assert shrunk.embedded == 2 + 1
    assert len(hits) == 2
    assert set(store.embeddings("u", minilm.model_id, 16)) == {"d0", "d1"}
    assert store.embeddings("u", minilm.model_id, minilm.dim) == {}


def test_a_changed_model_behind_the_same_name_re_embeds_and_drops_old_vectors(
    store: SQLiteStore, minilm: Embedder
) -> None:
    name = minilm.model_id.rsplit("#", 1)[0]
    assert minilm.model_id != name  # the real embedder's id carries a fingerprint
    store.add(docs("u", "one text", "another text"))
    Retrievers(store, embedder=lambda: minilm).get("dense").retrieve("u", "text", 1)
    other_name = CountingEmbedder(minilm, model_id="other-model#0123")
    Retrievers(store, embedder=lambda: other_name).get("dense").retrieve("u", "text", 1)
    retrained = CountingEmbedder(minilm, model_id=f"{name}#retrained")
    Retrievers(store, embedder=lambda: retrained).get("dense").retrieve("u", "text", 1)
    assert retrained.embedded == 2 + 1  # nothing reused from the old weights
    assert store.embeddings("u", minilm.model_id, minilm.dim) == {}  # superseded: dropped
    # Another model's vectors are not superseded by this one: switching back is free.
    assert set(store.embeddings("u", "other-model#0123", minilm.dim)) == {"d0", "d1"}


def test_folder_fingerprint_follows_every_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(bytes(range(256)) * 40_000)  # ~10 MB: read by sampled blocks
    first = folder_fingerprint(tmp_path)
    assert folder_fingerprint(tmp_path) == first
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # the last tensor's last byte, as fine-tuning would change
    weights.write_bytes(bytes(data))
    second = folder_fingerprint(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden": 8}')
    third = folder_fingerprint(tmp_path)
    assert len({first, second, third}) == 3


def test_hybrid_fuses_lexical_and_dense(store: SQLiteStore, minilm: Embedder) -> None:
    store.add(docs("u", "XJ-900 error code on the printer", "my dog is a small puppy", "tax forms"))
    hybrid = Retrievers(store, embedder=lambda: minilm).get("hybrid")
    top = [h.doc_id for h in hybrid.retrieve("u", "XJ-900 canine", 2)]
    assert set(top) == {"d0", "d1"}  # the lexical match and the semantic match


def test_unknown_retriever_and_user(store: SQLiteStore) -> None:
    retrievers = Retrievers(store, embedder=lambda: pytest.fail("unused"))
    with pytest.raises(ValueError, match="unknown retriever 'tfidf'"):
        retrievers.get("tfidf")
    with pytest.raises(KeyError, match="no user 'ghost'"):
        retrievers.get("bm25").retrieve("ghost", "x", 1)
