"""Yo'LLaVA-style concept tokens on a tiny random LLaVA: soft-token slots, training that
leaves the model untouched, the artifact, the strategy, staleness and delete-user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pgen.context.records import Subject, User
from pgen.context.sqlite import SQLiteStore
from pgen.models.base import GenerationSettings
from pgen.models.image_embedding import EfficientNetEmbedder
from pgen.models.vision import OpenAIVisionModel, TransformersVisionModel, VisionMessage
from pgen.training.concept_tokens import ConceptTokenSettings, train_concept_tokens
from pgen.training.progress import TrainStep
from pgen.training.registry import TrainRequest
from pgen.usermodel.concepts import introduction
from tests.multimodal.conftest import RecordingServer, blob_image, photo_engine

SHORT = GenerationSettings(max_new_tokens=5)


@pytest.fixture(scope="module")
def llava(tiny_vlm: Path) -> TransformersVisionModel:
    return TransformersVisionModel(str(tiny_vlm), name="tiny-llava")


def _chat(model: TransformersVisionModel, tokens: int = 4) -> list[VisionMessage]:
    return [
        VisionMessage("system", introduction("Rex", "dog", model.placeholder, tokens)),
        VisionMessage("user", "Is <Rex> in this photo?", (blob_image(0),)),
    ]


def test_soft_tokens_fill_the_placeholder_slots(llava: TransformersVisionModel) -> None:
    chat = _chat(llava)
    pad = llava.model.get_input_embeddings().weight[llava.processor.tokenizer.pad_token_id]
    # Filling the slots with the pad embedding itself is the plain prompt: same reply.
    same = llava.generate([chat], SHORT, soft_tokens=[pad.detach().repeat(4, 1)])
    assert same == llava.generate([chat], SHORT)
    inputs = llava.encode([chat])
    with torch.no_grad():  # the vectors reach the model: next-token scores move
        plain = llava.model(**inputs).logits[0, -1]
        filled = llava.with_soft_tokens(inputs, [torch.full((4, llava.hidden_size), 3.0)])
        moved = llava.model(**filled).logits[0, -1]
    assert not torch.allclose(plain, moved, atol=1e-4)
    with pytest.raises(ValueError, match="4 soft-token slots for 2"):
        llava.generate([chat], SHORT, soft_tokens=[torch.zeros(2, llava.hidden_size)])


def test_training_lowers_the_loss_and_leaves_the_model_as_it_was(
    llava: TransformersVisionModel, capfd: pytest.CaptureFixture[str]
) -> None:
    before = {k: v.clone() for k, v in llava.model.state_dict().items()}
    capfd.readouterr()
    tokens, losses = train_concept_tokens(
        llava, "Rex", "dog", [blob_image(0)], [], ConceptTokenSettings(steps=20, learning_rate=0.5)
    )
    err = capfd.readouterr().err  # pgen's bar, with the loss
    assert "training concept-tokens" in err and "20/20" in err and "loss=" in err
    assert tokens.shape == (4, llava.hidden_size) and not tokens.requires_grad
    # Steps alternate "Is <Rex> in this photo?" -> "Yes" and "Who is this?" -> "This is
    # <Rex>.": compare the same example. A random 2-layer model lets 4 of ~150 positions
    # move its loss only a little (normalization bounds their share), but they do move it.
    assert losses[18] < losses[0] - 5e-3 and losses[19] < losses[1], losses
    after = llava.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad is False for p in llava.model.parameters())


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.jpg")
        blob_image(i).save(paths[-1])
    return paths


def test_assistant_trains_uses_and_forgets_concept_tokens(
    tmp_path: Path,
    photos: list[Path],
    llava: TransformersVisionModel,
    efficientnet: EfficientNetEmbedder,
    vlm_server: RecordingServer,
) -> None:
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    store.add(
        [
            User(user_id="ann"),
            Subject(
                user_id="ann",
                name="Rex",
                class_word="dog",
                image_paths=[str(p) for p in photos[:2]],
            ),
            Subject(user_id="ann", name="Mug", class_word="mug", image_paths=[str(photos[2])]),
        ]
    )
    assistant = photo_engine(store, llava, efficientnet, allowed=[tmp_path], generation=SHORT)
    with pytest.raises(
        ValueError, match="no trained concept tokens; train them with pgen train-concept"
    ):
        assistant.answer("ann", photos[3], "Who is this?", strategy="concept-tokens")
    seen: list[TrainStep] = []
    settings = ConceptTokenSettings(steps=3)
    request = TrainRequest("ann", "concept-tokens", "Rex", settings=settings, on_step=seen.append)
    folder = assistant.train(request).artifact
    meta = json.loads((folder / "concept_tokens.json").read_text())
    # Each step told to the request's hook: its count, the total, its loss, whose tokens.
    assert [(s.step, s.total, s.users) for s in seen] == [(n, 3, ("ann",)) for n in (1, 2, 3)]
    assert [s.loss for s in seen] == meta["losses"]
    assert meta["format"] == "pgen-concept-tokens/1" and meta["base_model"] == "tiny-llava"
    assert (
        meta["negatives"] == 1
        and len(meta["losses"]) == 3
        and (folder / "tokens.safetensors").is_file()
    )

    answer = assistant.answer("ann", photos[3], "Who is this?", strategy="concept-tokens")
    assert answer.provenance["subjects"] == ["Rex"] and answer.provenance["artifacts"] == [
        str(folder)
    ]
    assert store.output("ann", answer.output_id).strategy == "concept-tokens"

    served = photo_engine(
        store, OpenAIVisionModel(vlm_server.url, "vlm"), efficientnet, allowed=[tmp_path]
    )
    with pytest.raises(ValueError, match="need a transformers vision model"):
        served.answer("ann", photos[3], "Who is this?", strategy="concept-tokens")

    blob_image(9).save(photos[0])  # a reference photo changed: the tokens are stale
    with pytest.raises(ValueError, match="changed reference photos; retrain: pgen train-concept"):
        assistant.answer("ann", photos[3], "Who is this?", strategy="concept-tokens")

    store.delete_user("ann")
    assert not folder.exists() and store.row_counts()["artifacts"] == 0
    store.close()
