"""Per-user LoRA: trained on the user's own documents, saved in plain PEFT format,
applied per row of a mixed batch, refused when stale, removed with the user."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pgen.context import Document
from pgen.context.artifacts import read_meta
from pgen.context.sqlite import SQLiteStore
from pgen.models.base import AdapterRef, GenerationSettings, Message
from pgen.models.text import TransformersTextModel
from pgen.personalize import TextRequest, Tools, get_strategy
from pgen.personalize.base import chat
from pgen.personalize.lora import StaleAdapterError, adapter_name
from pgen.training.examples import TEMPLATES, user_examples
from pgen.training.text_lora import train_user_lora
from pgen.usermodel.retrievers import Retrievers

from .conftest import TINY_LORA, documents

GREEDY = GenerationSettings(max_new_tokens=8)
TEXTS = {
    "ann": ("the battery lasts long", "the screen is bright", "great sound"),
    "bob": ("politics sports business", "1 2 3 4 5", "rank the candidates"),
    "cy": ("would not buy again", "poor battery", "you are a helpful assistant"),
}


def tools(store: SQLiteStore, model: TransformersTextModel, stale: str = "serve") -> Tools:
    def no_embedder() -> None:
        raise AssertionError("these tests retrieve with BM25 only")

    retrievers = Retrievers(store, no_embedder)  # type: ignore[arg-type]
    return Tools(store, retrievers, lambda: model, GREEDY, stale_adapters=stale)


def trained(store: SQLiteStore, model: TransformersTextModel, *users: str) -> dict[str, Path]:
    folders = {}
    for user in users:
        store.add(documents(user, *TEXTS[user]))
        folders[user] = train_user_lora(store, user, model, TINY_LORA)
    return folders


def ref(user: str, folder: Path) -> AdapterRef:
    return AdapterRef("lora", adapter_name("lora", user), folder)


def test_adapter_is_plain_peft_and_generates_the_same_tokens(
    store: SQLiteStore, model: TransformersTextModel, tiny_llama: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = trained(store, model, "ann")["ann"]
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {
        p.name for p in folder.iterdir()
    }
    meta = read_meta(folder)
    assert meta is not None and meta.kind == "lora" and meta.user_id == "ann"
    assert meta.base_model == "tiny-llama" and meta.settings["rank"] == 8
    assert meta.extra["steps"] == 6 and meta.extra["last_loss"] < meta.extra["first_loss"]

    # Plain PEFT, no pgen code in the way: the same greedy tokens as pgen's backend.
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), folder)
    prompt = model.render(chat("write a review"))
    ids = model.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = plain.generate(**ids, max_new_tokens=8, do_sample=False)
    expected = model.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert model.generate([chat("write a review")], GREEDY, [ref("ann", folder)]) == [
        expected.strip()
    ]
    assert model.generate([chat("write a review")], GREEDY) != [expected.strip()]  # it matters


def test_mixed_batch_equals_each_user_alone(store: SQLiteStore, tiny_llama: Path) -> None:
    model = TransformersTextModel(str(tiny_llama), name="tiny-llama", batch_size=8)
    folders = trained(store, model, "ann", "bob", "cy")
    refs = [ref(u, f) for u, f in folders.items()] + [None]
    chats = [chat("write a review")] * 4
    together = model.generate(chats, GREEDY, refs)
    alone = [model.generate([c], GREEDY, [r])[0] for c, r in zip(chats, refs, strict=True)]
    assert together == alone
    assert alone[3] == model.generate([chats[3]], GREEDY)[0]  # no adapter: the base model
    assert len(set(together)) >= 3  # the adapters really differ, so the test can tell rows apart
    assert model.adapters.loads == 3  # each adapter read from disk once


def test_adapter_cache_is_bounded_and_reloads_evicted(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    folders = trained(store, model, "ann", "bob", "cy")
    first = {u: model.generate([chat("hello")], GREEDY, [ref(u, f)])[0] for u, f in folders.items()}
    assert model.adapters.loaded() == [adapter_name("lora", "bob"), adapter_name("lora", "cy")]
    again = model.generate([chat("hello")], GREEDY, [ref("ann", folders["ann"])])[0]
    assert again == first["ann"] and model.adapters.loads == 4
    assert len(model.adapters.loaded()) == 2


def test_retrained_adapter_is_reloaded(store: SQLiteStore, model: TransformersTextModel) -> None:
    folder = trained(store, model, "ann")["ann"]
    before = model.generate([chat("hello")], GREEDY, [ref("ann", folder)])[0]
    store.add(documents("ann", "sports sports sports business"))  # replaces ann-d0
    train_user_lora(store, "ann", model, TINY_LORA)
    after = model.generate([chat("hello")], GREEDY, [ref("ann", folder)])[0]
    assert model.adapters.loads == 2  # same name, new weights: not the cached copy
    assert before != after


def test_training_set_holds_only_the_users_documents(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    # OPPU's reference code never reset its list: user i trained on users 0..i.
    folders = trained(store, model, "ann", "bob")
    for user, folder in folders.items():
        meta = read_meta(folder)
        assert meta is not None
        assert meta.extra["doc_ids"] == [f"{user}-d{i}" for i in range(3)]
        assert {e.user_id for e in user_examples(store, user)} == {user}
    assert read_meta(folders["ann"]).fingerprint != read_meta(folders["bob"]).fingerprint  # type: ignore[union-attr]


def test_examples_follow_the_task_template(store: SQLiteStore) -> None:
    store.add(
        [
            Document(user_id="u", doc_id="1", text="stocks fell", fields={"category": "business"}),
            Document(user_id="u", doc_id="2", text="no label here", kind="profile"),
        ]
    )
    by_doc = {e.doc_id: e for e in user_examples(store, "u", "LaMP_2")}
    assert by_doc["1"].output == "business" and "article: stocks fell" in by_doc["1"].instruction
    assert by_doc["2"].instruction == "Write a profile." and by_doc["2"].output == "no label here"
    rated = TEMPLATES["LaMP_3"](Document(user_id="u", doc_id="3", text="ok", fields={"score": 4.0}))
    assert rated is not None and rated[1] == "4" and rated[0].endswith("review: ok")
    with pytest.raises(ValueError, match="no example template"):
        user_examples(store, "u", "LaMP_9")


def test_strategies_name_the_users_adapter(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    folder = trained(store, model, "ann")["ann"]
    store.add(documents("bob", *TEXTS["bob"]))
    kit = tools(store, model)
    requests = [
        TextRequest("ann", "write about the battery"),
        TextRequest("bob", "write about the battery"),
    ]
    lora = get_strategy("text", "lora").prepare(requests, kit)
    assert lora[0].adapter == AdapterRef("lora", "lora-ann", folder, lora[0].adapter.settings)  # type: ignore[union-attr]
    assert lora[0].chat == get_strategy("text", "none").prepare(requests, kit)[0].chat
    assert lora[0].provenance.artifacts == [str(folder)]
    assert lora[1].adapter is None
    assert any("base model" in note for note in lora[1].provenance.notes)
    both = get_strategy("text", "lora+rag").prepare(requests, kit)
    rag = get_strategy("text", "rag").prepare(requests, kit)
    assert (
        both[0].chat == rag[0].chat and both[0].provenance.documents == rag[0].provenance.documents
    )
    assert both[0].provenance.documents and both[0].adapter is not None
    texts = model.generate([p.chat for p in both], GREEDY, [p.adapter for p in both])  # type: ignore[misc]
    assert len(texts) == 2


def test_stale_adapters_are_refused_with_the_retrain_command(
    store: SQLiteStore, model: TransformersTextModel, tiny_llama: Path
) -> None:
    trained(store, model, "ann")
    request = [TextRequest("ann", "hello")]
    get_strategy("text", "lora").prepare(request, tools(store, model, "refuse"))  # fresh
    other = TransformersTextModel(str(tiny_llama), name="another-base")
    with pytest.raises(
        StaleAdapterError, match=r"not another-base.*pgen train --user ann --method lora"
    ):
        get_strategy("text", "lora").prepare(request, tools(store, other, "refuse"))
    store.add([Document(user_id="ann", doc_id="new", text="a new review")])
    with pytest.raises(StaleAdapterError, match=r"training data changed.*--method lora"):
        get_strategy("text", "lora+rag").prepare(request, tools(store, model, "refuse"))


def test_stale_adapters_follow_the_policy_serve_or_base(
    store: SQLiteStore, model: TransformersTextModel, tiny_llama: Path
) -> None:
    folder = trained(store, model, "ann")["ann"]
    store.add([Document(user_id="ann", doc_id="new", text="a new review")])
    request = [TextRequest("ann", "hello")]
    served = get_strategy("text", "lora+rag").prepare(request, tools(store, model, "serve"))[0]
    assert served.adapter is not None and served.adapter.path == folder
    assert served.details["stale_adapter"] == "lora"
    assert any("stale" in n and "served as it is" in n for n in served.provenance.notes)
    based = get_strategy("text", "lora").prepare(request, tools(store, model, "base"))[0]
    assert based.adapter is None and based.details["adapter"] is None
    assert any("stale" in n and "ran on the base model" in n for n in based.provenance.notes)
    assert "stale_adapter" not in based.details
    # Weights for another base model cannot be served, whatever the policy: the base model.
    other = TransformersTextModel(str(tiny_llama), name="another-base")
    moved = get_strategy("text", "lora").prepare(request, tools(store, other, "serve"))[0]
    assert moved.adapter is None and any("not another-base" in n for n in moved.provenance.notes)


def test_delete_user_removes_adapters(store: SQLiteStore, model: TransformersTextModel) -> None:
    folders = trained(store, model, "ann", "bob")
    store.delete_user("ann")
    assert not folders["ann"].exists() and folders["bob"].exists()


def test_backend_refuses_what_it_cannot_apply(model: TransformersTextModel, tmp_path: Path) -> None:
    hello = [[Message("user", "hello")]]
    with pytest.raises(ValueError, match="not 'textual-inversion'"):
        model.generate(hello, GREEDY, [AdapterRef("textual-inversion", "x", tmp_path)])
    with pytest.raises(FileNotFoundError, match="no PEFT adapter folder"):
        model.generate(hello, GREEDY, [AdapterRef("lora", "x", tmp_path)])
    with pytest.raises(ValueError, match="1 chats but 2 adapters"):
        model.generate(hello, GREEDY, [None, None])


def test_user_adapter_can_start_from_the_shared_task_adapter(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    from dataclasses import replace

    from pgen.training.task_lora import train_task_lora

    store.add(documents("ann", *TEXTS["ann"]) + documents("bob", *TEXTS["bob"]))
    with pytest.raises(FileNotFoundError, match="--method task-lora"):
        train_user_lora(store, "ann", model, replace(TINY_LORA, from_task=True))
    task = train_task_lora(store, ["ann", "bob"], model, TINY_LORA)
    assert read_meta(task).user_id == "" and read_meta(task).extra["examples"] == 6  # type: ignore[union-attr]
    folder = train_user_lora(store, "ann", model, replace(TINY_LORA, from_task=True))
    refusing = tools(store, model, "refuse")
    get_strategy("text", "lora").prepare([TextRequest("ann", "hi")], refusing)
    train_task_lora(store, ["ann"], model, TINY_LORA)  # the task adapter changed under it
    with pytest.raises(StaleAdapterError, match="training data changed"):
        get_strategy("text", "lora").prepare([TextRequest("ann", "hi")], refusing)
    assert read_meta(folder).settings["from_task"] is True  # type: ignore[union-attr]


def test_concurrent_batches_never_see_each_others_adapters(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    folders = trained(store, model, "ann", "bob", "cy")
    refs = [ref(u, f) for u, f in folders.items()]
    jobs = [([chat("hello")] * 2, [refs[i % 3], refs[(i + 1) % 3]]) for i in range(6)]
    expected = [model.generate(chats, GREEDY, adapters) for chats, adapters in jobs]
    with ThreadPoolExecutor(max_workers=3) as pool:  # capacity 2 < 3 adapters: evictions too
        got = list(pool.map(lambda job: model.generate(job[0], GREEDY, job[1]), jobs))
    assert got == expected


def test_missing_loras_are_trained_once(store: SQLiteStore, model: TransformersTextModel) -> None:
    from pgen.training.text_lora import train_missing_loras

    store.add(documents("ann", *TEXTS["ann"]) + documents("bob", *TEXTS["bob"]))
    assert set(train_missing_loras(store, ["ann", "bob"], model, TINY_LORA)) == {"ann", "bob"}
    assert train_missing_loras(store, ["ann", "bob"], model, TINY_LORA) == {}
    store.add([Document(user_id="bob", doc_id="new", text="a new review")])
    assert set(train_missing_loras(store, ["ann", "bob"], model, TINY_LORA)) == {"bob"}


def test_generating_through_adapters_shows_no_third_party_deprecations(
    store: SQLiteStore, model: TransformersTextModel, capfd: pytest.CaptureFixture[str]
) -> None:
    """Generation and choice scoring, with and without a user's adapter, warn of nothing a
    user could act on (PEFT and pgen once passed the key/value cache by a name transformers
    deprecates)."""
    import warnings

    folder = trained(store, model, "ann")["ann"]
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for refs in ([ref("ann", folder)], None):
            model.generate([chat("write a review")], GREEDY, refs)
            model.choice_logprobs([chat("rate it")], ["good", "very bad"], refs)
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []
    assert "deprecated" not in capfd.readouterr().err
