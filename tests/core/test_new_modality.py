"""The proof that a modality is a protocol, a backend, an executor and its strategies: a toy
"caption-card" modality is added in this file alone (no package file knows it) and runs
through ``Engine.generate``, ``pgen generate``, the HTTP generate route and the outputs
listing, with its user's context in its prompt and its own model behind it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from pgen.cli.main import main
from pgen.components import Provenance, Tools
from pgen.config import Config
from pgen.context.records import Document, User
from pgen.engine import Engine
from pgen.factory import register_provider, register_role, unregister_role
from pgen.models.base import AdapterRef, TextSink
from pgen.models.executors import Executed
from pgen.personalize.registry import register, unregister
from pgen.results import Generation
from pgen.run.modalities import ModalitySpec, register_modality, unregister_modality
from tests.serve.server import serve_in_thread, service_config


# -- the modality: its protocol, a backend, its request and plan, an executor -----------------
class CardModel(Protocol):
    """Makes a card (a short framed text) from a prompt."""

    name: str

    def cards(self, prompts: Sequence[str], width: int) -> list[str]: ...


class FramingModel:
    """The tiny backend: the prompt in capitals between bars, cut to ``width``. It counts
    its calls, so the test sees that one batch was one call."""

    name = "framing-1"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def cards(self, prompts: Sequence[str], width: int) -> list[str]:
        self.calls.append(list(prompts))
        return [f"| {p.upper()[:width]} |" for p in prompts]


@dataclass(frozen=True)
class CardRequest:
    user_id: str
    instruction: str
    strategy: str = "plain"
    width: int = 40


@dataclass
class CardPlan:
    prompt: str
    provenance: Provenance = field(default_factory=Provenance)
    adapter: AdapterRef | None = None
    details: dict[str, Any] = field(default_factory=dict)
    width: int = 40


def execute_cards(
    model: CardModel,
    plans: Sequence[CardPlan],
    settings: Any,
    sinks: Sequence[TextSink | None] | None = None,
) -> list[Executed]:
    width = min(p.width for p in plans)
    return [Executed(text, model.name) for text in model.cards([p.prompt for p in plans], width)]


class PlainCard:
    name = "plain"
    modality = "card"
    description = "the instruction alone on a card"
    retrieves = False
    adapter_kind: str | None = None

    def prepare(self, requests: list[CardRequest], tools: Tools) -> list[CardPlan]:
        return [CardPlan(r.instruction, width=r.width) for r in requests]


class CityCard:
    name = "city"
    modality = "card"
    description = "the instruction and the user's city on a card"
    retrieves = False
    adapter_kind: str | None = None

    def prepare(self, requests: list[CardRequest], tools: Tools) -> list[CardPlan]:
        plans = []
        for request in requests:
            city = tools.store.user(request.user_id).profile.get("city", "nowhere")
            prompt = f"{request.instruction} from {city}"
            plans.append(CardPlan(prompt, Provenance(notes=[city]), width=request.width))
        return plans


MODEL = FramingModel()


@pytest.fixture(scope="module", autouse=True)
def card_modality() -> Iterator[None]:
    register_role("card")
    register_provider("card", "framing", lambda config, **_: MODEL)
    register_modality(ModalitySpec("card", CardRequest, "card", dict, execute_cards))
    register(PlainCard())
    register(CityCard())
    yield
    unregister("card", "plain")
    unregister("card", "city")
    unregister_modality("card")
    unregister_role("card")


def _context() -> list[Any]:
    return [
        User(user_id="ann", profile={"city": "Bologna"}),
        User(user_id="bo", profile={"city": "Lyon"}),
        Document(user_id="ann", doc_id="d1", text="Lemon tart."),
    ]


def test_engine_generate_runs_a_new_modality_and_saves_its_outputs(tmp_path: Path) -> None:
    config = Config(home=tmp_path / "home")
    with Engine.open(config) as engine:
        engine.ingest(_context())
        calls = len(MODEL.calls)
        ann, bo = engine.generate_many(
            [CardRequest("ann", "hello", "city"), CardRequest("bo", "hello", "city")]
        )
        assert len(MODEL.calls) == calls + 1  # one batch, one model call
        assert isinstance(ann, Generation) and ann.modality == "card"
        assert ann.text == "| HELLO FROM BOLOGNA |" and bo.text == "| HELLO FROM LYON |"
        assert ann.provenance.model == "framing-1" and ann.provenance.notes == ["Bologna"]
        plain = engine.generate(CardRequest("ann", "hello"))
        assert plain.text == "| HELLO |"
        stored = engine.outputs("ann")
        assert [(o.modality, o.strategy, o.text) for o in stored] == [
            ("card", "city", "| HELLO FROM BOLOGNA |"),
            ("card", "plain", "| HELLO |"),
        ]
        assert [o.text for o in engine.outputs("bo")] == ["| HELLO FROM LYON |"]
        with pytest.raises(ValueError, match="unknown card strategy 'rag'"):
            engine.generate(CardRequest("ann", "hello", "rag"))


def test_pgen_generate_runs_a_new_modality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(tmp_path / "home")]
    with Engine.open(Config(home=tmp_path / "home")) as engine:
        engine.ingest(_context())
    argv = ["generate", "--modality", "card", "--strategy", "city", "--user", "ann", "hi"]
    assert main([*argv, "--option", "width=5", *home]) == 0
    assert capsys.readouterr().out.startswith("| HI FR |")
    assert main([*argv, "--option", "colour=red", *home]) == 1
    assert "card requests take no colour" in capsys.readouterr().err
    assert main(["outputs", "--user", "ann", "--json", *home]) == 0
    assert '"modality": "card"' in capsys.readouterr().out


def test_the_http_generate_route_runs_a_new_modality(tmp_path: Path, tiny_llama: Path) -> None:
    config = service_config(tmp_path / "serve", tiny_llama)
    with serve_in_thread(config, tenants=("acme",)) as running, running.client("acme") as client:
        records = [
            {"type": "user", "user_id": "ann", "profile": {"city": "Bologna"}},
            {"type": "user", "user_id": "bo", "profile": {"city": "Lyon"}},
        ]
        assert client.post("/records", json={"records": records}).status_code == 200
        body = {
            "instruction": "hey",
            "modality": "card",
            "strategy": "city",
            "options": {"width": 30},
        }
        answer = client.post("/users/bo/generate", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["text"] == "| HEY FROM LYON |" and answer.json()["modality"] == "card"
        listed = client.get("/users/bo/outputs").json()
        assert [(o["modality"], o["text"]) for o in listed] == [("card", "| HEY FROM LYON |")]
        wrong = client.post("/users/bo/generate", json={**body, "options": {"colour": "red"}})
        assert wrong.status_code == 422 and "take no colour" in wrong.json()["error"]["message"]
        unknown = client.post("/users/nobody/generate", json=body)
        assert unknown.status_code == 404
