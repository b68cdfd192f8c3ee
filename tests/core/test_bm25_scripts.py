"""BM25 for scripts written without spaces (Chinese, Japanese, Thai) and mixed text."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest

from pgen.context.sqlite import SQLiteStore
from pgen.usermodel import Retrievers
from pgen.usermodel import bm25 as bm25_module
from pgen.usermodel import retrievers as retrievers_module
from pgen.usermodel.bm25 import Bm25Index, tokenize
from tests.core.conftest import docs


def index_of(*texts: str) -> Bm25Index:
    index = Bm25Index()
    index.add_many([(f"d{i}", text) for i, text in enumerate(texts)])
    return index


def test_a_chinese_word_inside_a_sentence_is_found() -> None:
    index = index_of("这个周末我们去公园散步", "今天的股票市场大跌", "我喜欢喝咖啡")
    assert [doc for doc, _ in index.search("周末", 5)] == ["d0"]
    assert [doc for doc, _ in index.search("你周末做什么？", 5)] == ["d0"]
    assert [doc for doc, _ in index.search("股票", 5)] == ["d1"]
    assert index.search("火车", 5) == []  # nothing shared: nothing returned


def test_japanese_kanji_and_kana_runs_are_found() -> None:
    index = index_of("昨日は東京でラーメンを食べました。", "週末に京都へ行きます", "猫が好き")
    assert [doc for doc, _ in index.search("ラーメン", 5)] == ["d0"]
    assert [doc for doc, _ in index.search("京都", 5)] == ["d1"]
    # Half-width katakana is the same word once normalized.
    assert [doc for doc, _ in index.search("ﾗｰﾒﾝ", 5)] == ["d0"]
    # A lone character between punctuation is a term of its own.
    assert [doc for doc, _ in index_of("猫。犬。", "鳥").search("猫", 5)] == ["d0"]


def test_thai_text_is_found() -> None:
    index = index_of("ฉันชอบกินข้าวผัด", "วันนี้ฝนตกหนัก")
    assert [doc for doc, _ in index.search("ข้าวผัด", 5)] == ["d0"]


def test_mixed_text_keeps_stemming_for_latin_words() -> None:
    assert tokenize("我爱Python programming") == ["python", "program", "我爱"]
    index = index_of("周末 I went running in 公园", "stocks fell 今天", "coffee 咖啡")
    assert [doc for doc, _ in index.search("run", 5)] == ["d0"]
    assert [doc for doc, _ in index.search("公园 run", 5)] == ["d0"]
    assert [doc for doc, _ in index.search("咖啡", 5)] == ["d2"]
    # Full-width Latin letters are the ASCII word.
    assert [doc for doc, _ in index.search("ｃｏｆｆｅｅ", 5)] == ["d2"]


def test_more_shared_bigrams_rank_higher() -> None:
    index = index_of("北京大学的图书馆", "北京的天气", "上海的图书馆")
    hits = [doc for doc, _ in index.search("北京大学图书馆", 5)]
    assert hits[0] == "d0"
    assert set(hits) == {"d0", "d1", "d2"}


def test_an_index_of_another_tokenizer_version_is_refused() -> None:
    arrays = index_of("周末去公园").to_arrays()
    assert Bm25Index.from_arrays(arrays).search("周末", 1)  # this version loads
    with pytest.raises(ValueError, match="tokenized by version 1"):
        Bm25Index.from_arrays({k: v for k, v in arrays.items() if k != "tokenizer"})
    arrays["tokenizer"] = np.array([bm25_module.TOKENIZER_VERSION + 1], dtype=np.int64)
    with pytest.raises(ValueError, match="tokenized by version"):
        Bm25Index.from_arrays(arrays)


def test_a_saved_index_of_an_older_tokenizer_is_rebuilt_from_the_store(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrievers_module, "SNAPSHOT_AFTER", 2)
    store.add(docs("u", "这个周末我们去公园", "股票市场", "咖啡很好喝"))
    first = Retrievers(store, embedder=lambda: pytest.fail("unused")).get("bm25")
    assert [h.doc_id for h in first.retrieve("u", "周末", 5)] == ["d0"]
    (folder,) = store.artifacts("u").values()
    saved = folder / "index.npz"
    with np.load(saved, allow_pickle=False) as loaded:
        arrays = {key: loaded[key] for key in loaded.files}
    # What an index saved before this tokenizer looked like: no version, whole runs as terms.
    old = Bm25Index()
    old.add_tokens("d0", ["这个周末我们去公园"])
    old.add_tokens("d1", ["股票市场"])
    old.add_tokens("d2", ["咖啡很好喝"])
    old_arrays = {k: v for k, v in old.to_arrays().items() if k != "tokenizer"}
    old_arrays["revision"] = arrays["revision"]  # the store's current revision: only the
    np.savez(saved, **cast(dict[str, Any], old_arrays))  # tokenizer version tells it is stale
    second = Retrievers(SQLiteStore(store.path), embedder=lambda: pytest.fail("unused"))
    assert [h.doc_id for h in second.get("bm25").retrieve("u", "周末", 5)] == ["d0"]
