"""``pgen bench attribution`` end to end on a tiny model and three tiny blog authors."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from pgen.bench import attribution as bench
from pgen.cli.main import build_parser
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.evaluate.metrics.copying import copied
from pgen.models.text import TransformersTextModel

TOPICS = {
    "111.female.30.Arts.Leo": ["paint", "canvas", "gallery", "brush", "colour"],
    "222.male.19.Student.Aries": ["exam", "lecture", "campus", "homework", "professor"],
    "333.female.45.indUnk.Virgo": ["garden", "tomato", "compost", "seedling", "soil"],
}


class WordHashEmbedder:
    """Bag of words hashed into 64 dimensions, L2-normalized: texts sharing words are close."""

    model_id = "word-hash-64"
    dim = 64

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1)


def write_authors(folder: Path) -> None:
    for name, words in TOPICS.items():
        posts = [
            f"<date>{day},March,2004</date>\n<post>\n On day {day} I wrote about {words[day % 5]} and "
            f"{words[(day + 1) % 5]} again, my {words[(day + 2) % 5]} &amp; more. </post>"
            for day in range(1, 13)
        ]
        (folder / f"{name}.xml").write_text("<Blog>\n" + "\n".join(posts) + "\n</Blog>")


@pytest.fixture
def authors(tmp_path: Path) -> list[bench.Author]:
    folder = tmp_path / "blogs"
    folder.mkdir()
    write_authors(folder)
    return bench.load_authors(folder, users=3, max_docs=4)


def test_authors_are_read_with_their_attributes_and_held_out_posts(
    authors: list[bench.Author],
) -> None:
    assert [a.user_id for a in authors] == ["blogger-111", "blogger-222", "blogger-333"]
    assert authors[0].profile == {"gender": "female", "age": 30, "industry": "Arts", "sign": "Leo"}
    assert "industry" not in authors[2].profile  # indUnk: unknown, left out
    assert len(authors[0].held_out) == bench.HELD_OUT and len(authors[0].documents) == 4
    assert "&" in authors[0].held_out[0] and "&amp;" not in authors[0].held_out[0]
    # The held-out posts are the last ones, and none of them is among the documents.
    assert authors[0].held_out[-1].startswith("On day 12 ")
    assert authors[0].documents[-1].text.startswith("On day 7 ")
    texts = {d.text for d in authors[0].documents}
    assert not texts & set(authors[0].held_out)


def test_attribution_finds_the_author_of_their_own_words(authors: list[bench.Author]) -> None:
    copies = [a.held_out[0] for a in authors]  # each author's own held-out words
    scores = bench.attribute_bm25(copies, authors)
    assert [int(np.argmax(row)) for row in scores] == [0, 1, 2]
    assert [bench.own_rank(row, n) for n, row in enumerate(scores)] == [1, 1, 1]
    assert bench.own_rank(np.array([0.0, 0.0, 0.0]), 0) == 3  # nothing matched: a miss


def test_bench_runs_end_to_end_and_counts_are_per_example_consistent(
    authors: list[bench.Author], tiny_llama: Path, tmp_path: Path
) -> None:
    model = TransformersTextModel(str(tiny_llama), name="tiny-llama", batch_size=8)
    embedder = WordHashEmbedder()
    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        engine = Engine(store, model, embedder, prompt_tokens=600)
        rows, notes = bench.run_attribution(
            engine,
            authors,
            ["none", "rag", "profile", "lora+rag"],
            ["Write a short bio.", "Write about your week."],
            max_new_tokens=4,
        )
        for author in authors:  # the held-out posts never reached the store
            stored = {d.text for d in store.documents(author.user_id)}
            assert not stored & set(author.held_out)
    assert notes and "lora+rag" in notes[0]  # skipped without --train-adapters
    assert len(rows) == 3 * 3 * 2 + 3 * 2  # and the ceiling: the authors' own posts
    assert [r["strategy"] for r in rows[::6]] == ["none", "rag", "profile", bench.CEILING]
    for author in authors:  # the ceiling's entries are the author's latest posts, cut
        own = [r for r in rows if r["strategy"] == bench.CEILING and r["user"] == author.user_id]
        assert [r["documents"] for r in own] == [
            [author.documents[-1].doc_id],
            [author.documents[-2].doc_id],
        ]
        assert own[0]["output"] == " ".join(author.documents[-1].text.split()[:3])
    centroids = {}
    for author in authors:
        mean = embedder.embed(author.held_out).mean(axis=0)
        centroids[author.user_id] = mean / np.linalg.norm(mean)
    for row in rows:
        vector = embedder.embed([row["output"] or " "])[0]
        own = float(vector @ centroids[row["user"]])
        others = max(float(vector @ c) for u, c in centroids.items() if u != row["user"])
        assert row["minilm_own"] == pytest.approx(own, abs=1e-3)
        assert row["minilm_best_other"] == pytest.approx(others, abs=1e-3)
        for reading in ("minilm", "bm25"):
            hit = row[f"{reading}_hit"]
            assert hit == (row[f"{reading}_rank"] == 1)
            own, best = row[f"{reading}_own"], row[f"{reading}_best_other"]
            assert hit == (own > best) or own == best  # equal once rounded to 4 places
            assert not hit or row[f"{reading}_closest"] == row["user"]
        if row["strategy"] == "rag":  # always about the user: documents or their profile
            assert row["documents"]
    table = bench.summarize(rows, n_authors=3)
    assert [line["strategy"] for line in table] == ["none", "rag", "profile", bench.CEILING]
    for line in table:
        mine = [r for r in rows if r["strategy"] == line["strategy"]]
        for reading in ("minilm", "bm25"):
            rate = sum(r[f"{reading}_hit"] for r in mine) / len(mine)
            assert line[reading]["value"] == pytest.approx(rate)
            assert line[reading]["low"] <= rate <= line[reading]["high"]
        assert line["chance"] == pytest.approx(1 / 3)
    assert "minilm_vs_none" in table[1] and "minilm_vs_none" not in table[0]
    bench.write_results(tmp_path / "out", rows, table, {"task": "attribution"})
    written = (tmp_path / "out" / "examples.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in written] == json.loads(json.dumps(rows))
    assert "| rag |" in (tmp_path / "out" / "report.md").read_text()


def test_the_command_is_registered() -> None:
    args = build_parser().parse_args(
        ["bench", "attribution", "--data", "blogs", "--users", "3", "--strategy", "none,rag"]
    )
    assert args.users == 3 and args.strategy == "none,rag" and args.instructions


def test_frames_are_compared_as_settings_and_copying_is_measured(
    authors: list[bench.Author], tiny_llama: Path, tmp_path: Path
) -> None:
    model = TransformersTextModel(str(tiny_llama), name="tiny-llama", batch_size=8)
    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        engine = Engine(store, model, WordHashEmbedder(), prompt_tokens=600)
        rows, _ = bench.run_attribution(
            engine,
            authors,
            ["none", "rag"],
            ["Write a short bio."],
            max_new_tokens=4,
            frames=("author", "assistant"),
        )
    settings = [r["strategy"] for r in rows]
    frames = ["none"] * 3 + ["rag (author)"] * 3 + ["rag (assistant)"] * 3
    assert settings == frames + [bench.CEILING] * 3
    assert [r["frame"] for r in rows[3:9]] == ["author"] * 3 + ["assistant"] * 3
    assert all(0.0 <= r["copied"] <= 1.0 for r in rows)
    table = bench.summarize(rows, n_authors=3)
    assert [line["strategy"] for line in table][:3] == ["none", "rag (author)", "rag (assistant)"]


def test_copied_is_the_share_of_output_ngrams_found_in_the_prompt_texts() -> None:
    source = "on day one I painted the old canvas in the gallery"
    assert copied("I painted the old canvas in blue", [source], n=3) == pytest.approx(4 / 5)
    assert copied("nothing here matches at all", [source], n=3) == 0.0
    assert copied("too short", [source], n=3) == 0.0  # no n-gram at all


def test_a_tuning_set_of_authors_can_be_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "blogs"
    folder.mkdir()
    write_authors(folder)
    later = bench.load_authors(folder, users=2, max_docs=4, skip=1)
    assert [a.user_id for a in later] == ["blogger-222", "blogger-333"]
