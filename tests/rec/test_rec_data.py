"""Every data format reads into records, ingests into the store, and reads back in time order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.context.sqlite import SQLiteStore
from pgen.recommend.arrays import leave_one_out, sequences_from_store
from pgen.recommend.data import DataFormatError, RecData, ingest, load_data
from tests.conftest import shared_data


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def read_back(data: RecData, tmp_path: Path) -> tuple[SQLiteStore, list[list[str]]]:
    store = SQLiteStore(tmp_path / "store.sqlite")
    ingest(store, data)
    seqs = sequences_from_store(store)
    return store, [[seqs.item_ids[i] for i in s] for s in seqs.sequences]


def test_ml100k_format_with_latin1_titles_and_tied_times(tmp_path: Path) -> None:
    folder = tmp_path / "ml-mini"
    write(folder / "u.data", "1\t2\t5\t100\n1\t1\t3\t50\n1\t10\t4\t100\n2\t1\t2\t7\n")
    flags = "|".join(["0"] * 18)
    write(
        folder / "u.item",
        f"1|Café Society (1995)|01-Jan-1995||url|1|{flags}\n"
        f"2|Heat (1995)|01-Jan-1995||url|0|{flags}\n"
        f"10|Casino (1995)|01-Jan-1995||url|0|{flags}\n",
        encoding="latin-1",
    )
    data = load_data(folder)
    assert next(i.title for i in data.items) == "Café Society (1995)"
    assert data.items[0].attributes["genres"] == ["unknown"]
    store, sequences = read_back(data, tmp_path)
    # User 1: item 1 at t=50 first; items 10 and 2 share t=100 and are ordered by item id.
    assert sequences == [["1", "10", "2"], ["1"]]
    assert store.interactions("1")[0].rating == 3.0


def test_movielens_csv_format(tmp_path: Path) -> None:
    folder = tmp_path / "ml-latest-small"
    write(
        folder / "movies.csv",
        'movieId,title,genres\n1,"Toy Story (1995)",Animation|Comedy\n2,Jumanji (1995),Adventure\n',
    )
    write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n7,2,4.5,20\n7,1,3.0,10\n")
    data = load_data(folder)
    assert data.items[0].attributes["genres"] == ["Animation", "Comedy"]
    assert "Genres: Animation, Comedy" in data.items[0].text
    _, sequences = read_back(data, tmp_path)
    assert sequences == [["1", "2"]]


def test_recbole_atomic_format(tmp_path: Path) -> None:
    folder = tmp_path / "toy"
    write(
        folder / "toy.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "a\tx\t5\t3\na\ty\t4\t1\nb\tx\t1\t2\n",
    )
    write(
        folder / "toy.item",
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\nx\tThe X Files\tDrama Mystery\n",
    )
    write(folder / "toy.user", "user_id:token\tage:float\na\t30\n")
    data = load_data(folder)
    titles = {i.item_id: i.title for i in data.items}
    assert titles == {"x": "The X Files", "y": "y"}  # y is used but not described
    store, sequences = read_back(data, tmp_path)
    assert sequences == [["y", "x"], ["x"]]
    assert store.user("a").profile == {"age": 30.0}


def test_amazon_reviews_with_python_literal_metadata(tmp_path: Path) -> None:
    reviews = [
        {"reviewerID": "R1", "asin": "B2", "overall": 5.0, "unixReviewTime": 200},
        {"reviewerID": "R1", "asin": "B1", "overall": 3.0, "unixReviewTime": 100},
    ]
    path = write(tmp_path / "reviews_Toys_5.json", "\n".join(json.dumps(r) for r in reviews))
    write(tmp_path / "meta_Toys_5.json", "{'asin': 'B1', 'title': 'Kite', 'brand': 'Sky'}\n")
    data = load_data(path)
    titles = {i.item_id: i.title for i in data.items}
    assert titles == {"B1": "Kite", "B2": "B2"}
    _, sequences = read_back(data, tmp_path)
    assert sequences == [["B1", "B2"]]


def test_errors_name_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    write(folder / "bad.inter", "user_id:token\titem_id\nu\ti\n")
    with pytest.raises(DataFormatError, match=r"bad\.inter:1: column 'item_id' needs a type"):
        load_data(folder)
    write(folder / "bad.inter", "user_id:token\titem_id:token\trating:float\nu\ti\tfive\n")
    with pytest.raises(DataFormatError, match=r"bad\.inter:2: rating must be a number"):
        load_data(folder)
    with pytest.raises(DataFormatError, match=r"found none of u\.data"):
        load_data(tmp_path / "bad" / "..")


def test_undated_interactions_keep_file_order_and_repeats(tmp_path: Path) -> None:
    # No timestamp column: file order is the only order there is. Sorting by item id
    # would give z last, and the repeated x would collapse into one row in the store.
    folder = tmp_path / "undated"
    write(folder / "undated.inter", "user_id:token\titem_id:token\na\tz\na\tx\nb\ty\na\ty\na\tx\n")
    _, sequences = read_back(load_data(folder), tmp_path / "recbole")
    assert sequences == [["z", "x", "y", "x"], ["y"]]
    reviews = [
        {"reviewerID": "R1", "asin": "B3", "overall": 5.0},
        {"reviewerID": "R1", "asin": "B1", "overall": 3.0},
        {"reviewerID": "R1", "asin": "B3", "overall": 4.0},
        {"reviewerID": "R1", "asin": "B2", "overall": 2.0, "unixReviewTime": 100},
    ]
    path = write(tmp_path / "reviews_Toys_5.json", "\n".join(json.dumps(r) for r in reviews))
    store, sequences = read_back(load_data(path), tmp_path / "amazon")
    # Undated reviews keep their order, repeat included, and come before dated ones.
    assert sequences == [["B3", "B1", "B3", "B2"]]
    assert [r.rating for r in store.interactions("R1")] == [5.0, 3.0, 4.0, 2.0]


def test_crlf_atomic_files_read_like_lf(tmp_path: Path) -> None:
    folder = tmp_path / "crlf"
    write(
        folder / "crlf.inter",
        "user_id:token\titem_id:token\ttimestamp:float\r\na\tx\t2\r\na\ty\t1\r\n",
    )
    write(folder / "crlf.item", "item_id:token\ttitle:token_seq\r\nx\tThe X\r\n")
    data = load_data(folder)
    assert {i.item_id: i.title for i in data.items} == {"x": "The X", "y": "y"}
    _, sequences = read_back(data, tmp_path)
    assert sequences == [["y", "x"]]


def test_user_and_item_files_without_their_id_field_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "toy"
    write(folder / "toy.inter", "user_id:token\titem_id:token\na\tx\n")
    write(folder / "toy.user", "uid:token\tage:float\na\t30\n")
    with pytest.raises(DataFormatError, match=r"toy\.user:1: needs user_id:token"):
        load_data(folder)
    (folder / "toy.user").unlink()
    write(folder / "toy.item", "movie:token\ttitle:token_seq\nx\tThe X\n")
    with pytest.raises(DataFormatError, match=r"toy\.item:1: needs item_id:token"):
        load_data(folder)


def test_failed_ingest_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "toy"
    write(folder / "toy.inter", "user_id:token\titem_id:token\na\tx\n")
    data = load_data(folder)
    data.interactions.append(data.interactions[0].model_copy(update={"item_id": "ghost"}))
    store = SQLiteStore(tmp_path / "s.sqlite")
    with pytest.raises(DataFormatError, match="'ghost', which is not in the catalog"):
        ingest(store, data)
    assert store.items() == [] and store.all_interactions() == []


def test_ml100k_real_data_round_trip(tmp_path: Path) -> None:
    data = load_data(shared_data("ml-100k"))
    assert (len(data.items), len(data.interactions), len(data.users)) == (1682, 100000, 943)
    store = SQLiteStore(tmp_path / "ml.sqlite")
    ingest(store, data)
    sequences = sequences_from_store(store)
    assert (sequences.n_users, sequences.n_items, sequences.n_interactions) == (943, 1682, 100000)
    split = leave_one_out(sequences)
    assert len(split.eval_users) == 943  # every ML-100K user has at least 20 ratings
    user = sequences.user_ids[0]
    times = [i.time for i in store.interactions(user)]
    assert times == sorted(times)
