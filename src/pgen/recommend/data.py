"""Recommendation data sets read into context records (items, interactions, users).

Four formats: MovieLens 100K (``u.data`` + ``u.item``), the MovieLens CSV format of
ml-latest / ml-25m (``ratings.csv`` + ``movies.csv``), RecBole atomic files (``.inter``,
``.item``, ``.user`` with ``name:type`` headers) and Amazon 5-core review JSON lines.
Times become UTC datetimes so the store orders them chronologically. An interaction
without a time (a RecBole ``.inter`` with no ``timestamp`` column, an Amazon review with no
``unixReviewTime``) gets a synthetic one: 1970-01-01 UTC plus its line number in seconds
(``undated_time``). The store orders a user's interactions by (time, item id) and keys them
by (user, item, action, time), so without it undated data would come back sorted by item
id rather than in file order, and a repeated undated interaction would collapse into one.
Real times lie decades later, so in a file that mixes both the undated rows come first.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from pgen.context.base import ContextStore, IngestStats
from pgen.context.formats import FormatError
from pgen.context.formats.amazon import read_reviews
from pgen.context.formats.jsonl import read_lines
from pgen.context.records import Interaction, Item, User
from pgen.errors import InvalidRequest


@dataclass
class RecData:
    """What a loader read: the catalog, the behaviors, and user profiles if the set has them."""

    name: str
    items: list[Item]
    interactions: list[Interaction]
    users: list[User] = field(default_factory=list)


class DataFormatError(InvalidRequest):
    """A data file that does not match its format; the message names file and line."""


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), tz=UTC)


UNDATED_START = datetime(1970, 1, 1, tzinfo=UTC)


def undated_time(line_no: int) -> datetime:
    """The synthetic time of an undated interaction read from line ``line_no`` (see above)."""
    return UNDATED_START + timedelta(seconds=line_no)


def _open_text(path: Path, encoding: str = "utf-8") -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding)
    return path.open(encoding=encoding, newline="")


def _number(text: str, path: Path, line: int, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataFormatError(f"{path}:{line}: {name} must be a number, got {text!r}") from None


# -- MovieLens 100K -------------------------------------------------------------------
ML100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def load_ml100k(folder: Path) -> RecData:
    """``u.data`` (user, item, rating, unix time; tabs) and ``u.item`` (pipes, latin-1)."""
    items: list[Item] = []
    item_path = folder / "u.item"
    with item_path.open(encoding="latin-1") as handle:
        for line_no, line in enumerate(handle, 1):
            parts = line.rstrip("\n").split("|")
            if len(parts) < 5 + len(ML100K_GENRES):
                raise DataFormatError(
                    f"{item_path}:{line_no}: expected 24 '|'-separated fields, got {len(parts)}"
                )
            genres = [g for g, flag in zip(ML100K_GENRES, parts[5:], strict=False) if flag == "1"]
            items.append(_movie(parts[0], parts[1], genres, {"release_date": parts[2]}))
    interactions = []
    data_path = folder / "u.data"
    with data_path.open(encoding="latin-1") as handle:
        for line_no, line in enumerate(handle, 1):
            parts = line.split()
            if len(parts) != 4:
                raise DataFormatError(
                    f"{data_path}:{line_no}: expected user, item, rating, time; got {line!r}"
                )
            interactions.append(
                Interaction(
                    user_id=parts[0],
                    item_id=parts[1],
                    rating=_number(parts[2], data_path, line_no, "rating"),
                    time=_utc(_number(parts[3], data_path, line_no, "time")),
                )
            )
    users = _ml100k_users(folder / "u.user")
    return RecData(folder.name, items, interactions, users)


def _movie(item_id: str, title: str, genres: list[str], extra: dict[str, Any]) -> Item:
    # The text an embedder sees: title and genres are all MovieLens says about a movie.
    text = f"{title}. Genres: {', '.join(genres)}." if genres else title
    return Item(item_id=item_id, title=title, text=text, attributes={"genres": genres, **extra})


def _ml100k_users(path: Path) -> list[User]:
    if not path.is_file():
        return []
    users = []
    with path.open(encoding="latin-1") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("|")
            if len(parts) == 5:
                profile = {"age": int(parts[1]), "gender": parts[2], "occupation": parts[3]}
                users.append(User(user_id=parts[0], profile=profile))
    return users


# -- MovieLens CSV (ml-latest, ml-25m) ---------------------------------------------------
def _csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in required if name not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(f"{path}:1: header lacks columns {missing}")
        yield from enumerate(reader, 2)


def load_movielens_csv(folder: Path) -> RecData:
    """``ratings.csv`` (userId, movieId, rating, timestamp) and ``movies.csv``."""
    movies = folder / "movies.csv"
    items = [
        _movie(row["movieId"], row["title"], [g for g in row["genres"].split("|") if g], {})
        for _, row in _csv_rows(movies, ("movieId", "title", "genres"))
    ]
    ratings = folder / "ratings.csv"
    interactions = [
        Interaction(
            user_id=row["userId"],
            item_id=row["movieId"],
            rating=_number(row["rating"], ratings, line, "rating"),
            time=_utc(_number(row["timestamp"], ratings, line, "timestamp")),
        )
        for line, row in _csv_rows(ratings, ("userId", "movieId", "rating", "timestamp"))
    ]
    return RecData(folder.name, items, interactions)


# -- RecBole atomic files -----------------------------------------------------------------
def _atomic(path: Path, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a RecBole atomic file, keyed by field name, values typed by the header;
    ``required`` fields must be in the header (the error names the file and the field)."""
    with _open_text(path) as handle:
        # rstrip("\r\n"): files written on Windows end lines with CRLF (the newline=""
        # of _open_text keeps the \r), which would otherwise end up in the last field.
        header = handle.readline().rstrip("\r\n").split("\t")
        fields: list[tuple[str, str]] = []
        for column in header:
            name, _, kind = column.partition(":")
            if kind not in ("token", "token_seq", "float", "float_seq"):
                raise DataFormatError(
                    f"{path}:1: column {column!r} needs a type: name:token, token_seq, "
                    "float or float_seq"
                )
            fields.append((name, kind))
        missing = [name for name in required if name not in {f for f, _ in fields}]
        if missing:
            raise DataFormatError(
                f"{path}:1: needs {' and '.join(f'{m}:token' for m in missing)} column(s); "
                f"header has {', '.join(header)}"
            )
        for line_no, line in enumerate(handle, 2):
            values = line.rstrip("\r\n").split("\t")
            if len(values) != len(fields):
                raise DataFormatError(
                    f"{path}:{line_no}: {len(values)} fields, header has {len(fields)}"
                )
            row: dict[str, Any] = {}
            for (name, kind), value in zip(fields, values, strict=True):
                if kind == "float":
                    row[name] = _number(value, path, line_no, name) if value else None
                elif kind == "float_seq":
                    row[name] = [_number(v, path, line_no, name) for v in value.split()]
                else:
                    row[name] = value
            yield line_no, row


def load_recbole(folder: Path, name: str | None = None) -> RecData:
    """``<name>.inter`` (user_id, item_id, optional rating / timestamp), ``.item``, ``.user``."""
    name = name or folder.name
    inter_path = folder / f"{name}.inter"
    if not inter_path.is_file():
        raise DataFormatError(f"{inter_path}: not found (RecBole data needs <name>.inter)")
    interactions = []
    for line_no, row in _atomic(inter_path, ("user_id", "item_id")):
        stamp = row.get("timestamp")
        if stamp is None and "timestamp" in row:
            raise DataFormatError(f"{inter_path}:{line_no}: empty timestamp")
        interactions.append(
            Interaction(
                user_id=row["user_id"],
                item_id=row["item_id"],
                rating=row.get("rating"),
                time=_utc(stamp) if stamp is not None else undated_time(line_no),
            )
        )
    items = _recbole_items(folder / f"{name}.item", {i.item_id for i in interactions})
    users = []
    user_path = folder / f"{name}.user"
    if user_path.is_file():
        for _, row in _atomic(user_path, ("user_id",)):
            user_id = row.pop("user_id")
            users.append(User(user_id=user_id, profile=row))
    return RecData(name, items, interactions, users)


def _recbole_items(path: Path, used: set[str]) -> list[Item]:
    items: dict[str, Item] = {}
    if path.is_file():
        for _, row in _atomic(path, ("item_id",)):
            item_id = row.pop("item_id")
            title_field = next((k for k in row if "title" in k or k == "name"), None)
            title = str(row.pop(title_field)) if title_field else item_id
            text = " ".join(str(v) for v in row.values() if isinstance(v, str) and v)
            items[item_id] = Item(
                item_id=item_id, title=title, text=f"{title}. {text}".strip(), attributes=row
            )
    # Interactions on items the .item file does not describe still need a catalog entry.
    for item_id in sorted(used - items.keys()):
        items[item_id] = Item(item_id=item_id, title=item_id)
    return list(items.values())


# -- Amazon 5-core reviews ----------------------------------------------------------------
def load_amazon(reviews: Path, meta: Path | None = None) -> RecData:
    """Items from ``asin``, interactions from reviews (reviewerID, overall, unixReviewTime),
    read by the one Amazon reader (``pgen.context.formats.amazon``) under the "raise"
    policy: this is data a person loads, so a bad line stops it, naming file and line.

    ``meta`` (the category's metadata file) gives titles and descriptions when present; the
    older metadata dumps are Python literals rather than JSON, so those are accepted there.
    """
    try:
        read = read_reviews(reviews, "raise")
        described_lines = read_lines(meta, "raise", literals=True) if meta else None
    except FormatError as error:
        raise DataFormatError(str(error)) from None
    interactions = [
        Interaction(
            user_id=review.reviewer,
            item_id=review.asin,
            action="review",
            rating=review.overall,
            time=_utc(review.time) if review.time is not None else undated_time(review.line),
        )
        for review in read.reviews
    ]
    asins = {review.asin for review in read.reviews}
    described: dict[str, Item] = {}
    for _, record in described_lines.values if described_lines else []:
        asin = record.get("asin") if isinstance(record, dict) else None
        if asin in asins:
            described[asin] = _amazon_item(asin, record)
    items = [described.get(a) or Item(item_id=a, title=a) for a in sorted(asins)]
    return RecData(reviews.name.split(".")[0], items, interactions)


def _amazon_item(asin: str, record: dict[str, Any]) -> Item:
    title = str(record.get("title") or asin)
    description = record.get("description") or ""
    if isinstance(description, list):
        description = " ".join(str(d) for d in description)
    brand = record.get("brand")
    attributes: dict[str, Any] = {
        k: record[k] for k in ("brand", "price", "categories", "category") if k in record
    }
    text = " ".join(p for p in (title, f"Brand: {brand}." if brand else "", description) if p)
    return Item(item_id=asin, title=title, text=text[:2000], attributes=attributes)


# -- one entry point ----------------------------------------------------------------------
def load_data(path: str | Path) -> RecData:
    """Read a data set, recognising its format from the files present."""
    path = Path(path).expanduser()
    if path.is_file():
        if ".json" in path.name:
            # reviews_Toys_and_Games_5.json -> meta_Toys_and_Games(_5).json(.gz)
            category = path.name.removeprefix("reviews_").split(".")[0]
            names = [
                f"meta_{name}.json{zipped}"
                for name in (category, category.removesuffix("_5"))
                for zipped in ("", ".gz")
            ]
            meta = next((path.with_name(n) for n in names if path.with_name(n).is_file()), None)
            return load_amazon(path, meta)
        if path.suffix == ".inter":
            return load_recbole(path.parent, path.stem)
        raise DataFormatError(f"{path}: not a known recommendation file (.json, .inter)")
    if not path.is_dir():
        raise DataFormatError(f"{path}: no such file or folder")
    if (path / "u.data").is_file():
        return load_ml100k(path)
    if (path / "ratings.csv").is_file():
        return load_movielens_csv(path)
    inters = sorted(path.glob("*.inter"))
    if inters:
        return load_recbole(path, inters[0].stem)
    raise DataFormatError(
        f"{path}: found none of u.data (ML-100K), ratings.csv (MovieLens CSV), "
        "*.inter (RecBole atomic) or a reviews JSON file"
    )


def ingest(store: ContextStore, data: RecData) -> IngestStats:
    """Write the catalog, profiles and behaviors in one transaction (all or nothing)."""
    known = {item.item_id for item in data.items}
    for interaction in data.interactions:
        if interaction.item_id not in known:
            raise DataFormatError(
                f"{data.name}: interaction of user {interaction.user_id!r} names item "
                f"{interaction.item_id!r}, which is not in the catalog"
            )
    return store.add([*data.items, *data.users, *data.interactions])
