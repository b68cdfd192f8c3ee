"""Provider tables (pgen.factory), the retriever registry and ``settings_from``: a new
backend is one registration, reachable from the config, the Engine and the CLI."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from pgen import factory
from pgen.cli.main import main
from pgen.config import Config, load_config, settings_from
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.usermodel import RETRIEVERS, Retrievers
from pgen.usermodel import retrievers as retrievers_module
from pgen.usermodel.retrievers import Hit, register_retriever
from tests.core.conftest import docs


@pytest.fixture
def scratch_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made in a test are gone after it."""
    for role, table in factory._PROVIDERS.items():
        monkeypatch.setitem(factory._PROVIDERS, role, dict(table))
    monkeypatch.setattr(retrievers_module, "_FACTORIES", dict(retrievers_module._FACTORIES))


def test_a_registered_store_provider_is_built_from_the_toml_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scratch_providers: None
) -> None:
    built: list[dict[str, Any]] = []

    def memo_store(config: Config, /, **settings: Any) -> SQLiteStore:
        built.append(settings)
        return SQLiteStore(Path(settings["folder"]) / "memo.sqlite")

    factory.register_provider("store", "memo", memo_store)
    assert "memo" in factory.providers("store")
    toml = tmp_path / "pgen.toml"
    toml.write_text(f'[store]\nprovider = "memo"\nsettings = {{ folder = "{tmp_path}" }}\n')
    config = load_config(toml, home=str(tmp_path / "home"))
    with Engine.open(config) as engine:
        assert engine.store.location.endswith("memo.sqlite")
    assert built == [{"folder": str(tmp_path)}]
    # A URL's scheme names the provider too; the builder gets the URL.
    factory.register_provider("store", "memo2", lambda config, /, url: ("memo2", url))
    assert factory.build("store", "memo2://db/1") == ("memo2", "memo2://db/1")


def test_a_registered_text_provider_is_built_by_build_text_model(
    scratch_providers: None,
) -> None:
    factory.register_provider("text", "echo", lambda config, /, **s: ("echo", s))
    config = Config(text_model={"provider": "echo", "settings": {"size": 3}})
    assert factory.build_text_model(config, batch_size=8) == ("echo", {"size": 3, "batch_size": 8})
    assert factory.build("text", {"provider": "echo"}) == ("echo", {})


def test_an_unknown_provider_is_one_line_naming_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"store: unknown provider 'nope'; registered: sqlite"):
        factory.build_store(Config(store={"provider": "nope"}))
    with pytest.raises(ValueError, match=r"unknown provider 'gpt'; registered: smollm2, "):
        factory.build("text", {"provider": "gpt"})
    with pytest.raises(ValueError, match="unknown component role"):
        factory.register_provider("speaker", "x", lambda config: None)
    home = ["--home", str(tmp_path)]
    assert main([*home, "--store", "nope://x", "users"]) == 1


def test_the_store_may_be_a_path_or_a_sqlite_url(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    for value in (str(path), f"sqlite:///{path}"):
        config = load_config(None, store=value)
        assert config.store_path == path
        store = factory.build_store(config)
        assert Path(store.location) == path
        store.close()
    assert main(["--home", str(tmp_path), "--store", f"sqlite:///{path}", "users"]) == 0


def test_recommender_and_retriever_tables_are_their_registries() -> None:
    from pgen.recommend.recommenders import REGISTRY

    assert factory.providers("recommender") == list(REGISTRY)
    assert factory.providers("retriever") == list(RETRIEVERS)
    model = factory.build("recommender", {"provider": "pop", "settings": {"n_users": 3}}, n_items=5)
    assert model.name == "pop"


class _ByDocId:
    """Every document of the user, by doc_id descending, whatever the query."""

    name = "by-id"

    def __init__(self, store: Any) -> None:
        self.store = store

    def retrieve(self, user_id: str, query: str, k: int) -> list[Hit]:
        ids = sorted(self.store.recent_doc_ids(user_id, 1000), reverse=True)[:k]
        return [Hit(doc_id, 1.0) for doc_id in ids]

    def forget(self, user_id: str) -> None:
        pass


def test_a_registered_retriever_is_usable_by_name(
    tmp_path: Path, scratch_providers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    register_retriever("by-id", lambda r: _ByDocId(r.store))
    assert "by-id" in RETRIEVERS and "by-id" in list(RETRIEVERS)
    path = tmp_path / "pgen.sqlite"
    store = SQLiteStore(path)
    store.add(docs("u", "alpha", "beta", "gamma"))
    engine = Engine(store, lambda: pytest.fail("no model"), lambda: pytest.fail("no embedder"))
    hits = engine.search("u", "anything", k=2, retriever="by-id")
    assert [(h.document.doc_id, h.retriever) for h in hits] == [("d2", "by-id"), ("d1", "by-id")]
    store.close()
    # The CLI's --retriever choices come from the registry.
    argv = ["--store", str(path), "search", "anything", "--user", "u"]
    assert main([*argv, "--retriever", "by-id", "--k", "1", "--json"]) == 0
    assert [row["doc_id"] for row in json.loads(capsys.readouterr().out)] == ["d2"]
    # The factory's retriever table is the same registry.
    store = SQLiteStore(path)
    built = factory.build("retriever", {"provider": "by-id", "settings": {"store": store}})
    assert isinstance(built, _ByDocId)
    store.close()
    with pytest.raises(ValueError, match="unknown retriever 'nope'; choose from bm25"):
        Retrievers(store, lambda: pytest.fail("no embedder")).get("nope")


@dataclass(frozen=True)
class _Settings:
    rank: int = 8
    learning_rate: float = 1e-3
    task: str | None = None
    tags: tuple[str, ...] = ()


class _Body(BaseModel):
    rank: int | None = None
    task: str | None = None
    unrelated: str = "x"


def test_settings_from_flags_bodies_and_mappings() -> None:
    flags = argparse.Namespace(rank=4, learning_rate=None, task="LaMP_2", other=1)
    assert settings_from(_Settings, flags) == _Settings(rank=4, task="LaMP_2")
    assert settings_from(_Settings, _Body(task="t")) == _Settings(task="t")
    assert settings_from(_Settings, {"rank": 2, "nope": 1}) == _Settings(rank=2)
    # Later sources and overrides on top; None keeps what is below.
    base = _Settings(rank=16, tags=("a",))
    merged = settings_from(_Settings, base, flags, learning_rate=0.5, task=None)
    assert merged == _Settings(rank=4, learning_rate=0.5, task="LaMP_2", tags=("a",))
    assert settings_from(_Settings) == _Settings()
    with pytest.raises(TypeError, match="no settings"):
        settings_from(_Settings, flags, ranks=3)
    with pytest.raises(TypeError, match="needs a dataclass"):
        settings_from(dict, flags)  # type: ignore[type-var]
