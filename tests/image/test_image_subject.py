"""Subject strategies end to end on the tiny pipeline: train, save, reload, generate, delete."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from pgen.context import Subject, User
from pgen.context.sqlite import SQLiteStore
from pgen.models.image import DiffusersImageModel, ImageGenerationSettings, load_image_model
from pgen.personalize.base import image_tools
from pgen.personalize.subject import (
    IPAdapterSpec,
    generate_subject,
    mentioned_subject,
    subject_prompt,
    trained,
)
from pgen.training.progress import TrainStep
from pgen.training.registry import TrainRequest, get_trainer, stoppable
from pgen.training.stopping import TrainingCancelled
from pgen.training.subject_artifacts import SubjectTrainingSettings, read_metadata
from pgen.training.subject_trainer import train_subject

FAST = ImageGenerationSettings(steps=2, guidance_scale=2.0)
TRAIN = SubjectTrainingSettings(steps=2, learning_rate=1e-2)


@pytest.fixture(scope="module")
def model(tiny_sd: Path) -> DiffusersImageModel:
    return load_image_model(str(tiny_sd), dtype="float32")


@pytest.fixture
def store(tmp_path: Path, reference_images: list[Path]) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    paths = [str(p) for p in reference_images]
    store.add(
        [
            User(user_id="ana"),
            Subject(user_id="ana", name="rex", class_word="dog", image_paths=paths),
            Subject(user_id="bob", name="rex", class_word="cat", image_paths=paths[:1]),
        ]
    )
    return store


def _pixels(images: list) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.float32) for image in images])


def test_prompts_name_the_subject_where_the_instruction_does() -> None:
    rex = Subject(user_id="u", name="Rex", class_word="dog", image_paths=["x.jpg"])
    assert subject_prompt("my dog rex on a beach", rex, "sks dog") == "sks dog on a beach"
    assert subject_prompt("Rex in the snow", rex, "sks dog") == "sks dog in the snow"
    assert subject_prompt("a beach", rex, "sks dog") == "a sks dog, a beach"
    assert mentioned_subject([rex], "rexford at home") is None
    assert mentioned_subject([rex], "a photo of REX") == rex


def test_dreambooth_lora_trains_saves_and_loads_in_plain_diffusers(
    model: DiffusersImageModel, store: SQLiteStore, tiny_sd: Path
) -> None:
    before = {k: v.clone() for k, v in model.pipe.unet.state_dict().items()}
    baseline = model.generate(["a sks dog on a beach"], FAST)
    folder = train_subject(store, "ana", "rex", model, "dreambooth-lora", TRAIN)

    # Training left the shared model untouched.
    after = model.pipe.unet.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    meta = read_metadata(folder)
    assert (folder / "pgen_artifact.json").is_file() and meta["method"] == "dreambooth-lora"
    assert meta["token"] == "sks" and meta["class_word"] == "dog" and len(meta["losses"]) == 2
    weights = load_file(folder / "pytorch_lora_weights.safetensors")
    assert weights and all(k.startswith("unet.") and "lora" in k for k in weights)

    # Plain diffusers loads the artifact and it changes the images.
    plain = StableDiffusionPipeline.from_pretrained(tiny_sd)
    plain.set_progress_bar_config(disable=True)
    plain.load_lora_weights(str(folder))
    generator = torch.Generator().manual_seed(0)
    adapted = plain(
        "a sks dog on a beach",
        num_inference_steps=2,
        guidance_scale=2.0,
        generator=generator,
        height=32,
        width=32,
    ).images
    assert np.abs(_pixels(adapted) - _pixels(baseline)).mean() > 0.1

    out = generate_subject(store, "ana", "a rex on a beach", model, FAST)
    assert out.prompt == "a sks dog on a beach"
    assert out.provenance["method"] == "dreambooth-lora"
    assert out.provenance["artifacts"] == [str(folder)]
    np.testing.assert_allclose(_pixels(out.images), _pixels(adapted), atol=2)
    # The adapter was unloaded after the request.
    np.testing.assert_allclose(
        _pixels(model.generate(["a sks dog on a beach"], FAST)), _pixels(baseline), atol=1
    )


def test_prior_preservation_generates_and_reuses_class_images(
    model: DiffusersImageModel,
    store: SQLiteStore,
    tiny_sd: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pgen.training import dreambooth as subject_dreambooth

    generated: list[str] = []
    conditioned: list[str] = []
    generate, condition = model.generate, subject_dreambooth.prompt_conditioning

    def spy_generate(prompts: list[str], *args: object, **kwargs: object) -> list:
        generated.extend(prompts)
        return generate(prompts, *args, **kwargs)  # type: ignore[arg-type]

    def spy_condition(m: DiffusersImageModel, prompt: str, size: int) -> dict:
        conditioned.append(prompt)
        return condition(m, prompt, size)

    monkeypatch.setattr(model, "generate", spy_generate)
    monkeypatch.setattr(subject_dreambooth, "prompt_conditioning", spy_condition)
    config = SubjectTrainingSettings(
        steps=1, prior_preservation=True, class_images=2, class_steps=2
    )
    folder = train_subject(store, "ana", "rex", model, "dreambooth-lora", config)
    # The prior loss is conditioned on the very prompt the class images were drawn from.
    assert generated == ["a dog", "a dog"]
    assert conditioned == ["a sks dog", "a dog"]
    [cache] = (folder / "class_images").iterdir()
    assert cache.name.startswith("dog-")
    made = sorted(cache.glob("*.png"))
    assert len(made) == 2
    stamps = [p.stat().st_mtime_ns for p in made]
    train_subject(store, "ana", "rex", model, "dreambooth-lora", config)
    assert [p.stat().st_mtime_ns for p in made] == stamps
    assert generated == ["a dog", "a dog"]  # reused, not drawn again

    # Another base model drew other class images: they are not its prior.
    other = load_image_model(str(shutil.copytree(tiny_sd, tmp_path / "other-sd")), dtype="float32")
    train_subject(store, "ana", "rex", other, "dreambooth-lora", config)
    assert len(list((folder / "class_images").iterdir())) == 2


def test_stale_artifacts_are_refused_with_the_retrain_command(
    model: DiffusersImageModel, tiny_sd: Path, tmp_path: Path, reference_images: list[Path]
) -> None:
    photos = [Path(shutil.copy(p, tmp_path / p.name)) for p in reference_images]
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    store.add(
        [
            User(user_id="ana"),
            Subject(
                user_id="ana", name="rex", class_word="dog", image_paths=list(map(str, photos))
            ),
        ]
    )
    for method in ("dreambooth-lora", "textual-inversion"):
        train_subject(store, "ana", "rex", model, method, TRAIN)
        generate_subject(store, "ana", "rex", model, FAST, method=method)  # fresh: loads

    other = load_image_model(str(shutil.copytree(tiny_sd, tmp_path / "other-sd")), dtype="float32")
    with pytest.raises(ValueError, match="trained on base model") as error:
        generate_subject(store, "ana", "rex", other, FAST, method="dreambooth-lora")
    assert "subject 'rex' of user 'ana'" in str(error.value)
    assert str(error.value).endswith(
        f"retrain: pgen train-subject --user ana --subject rex --method dreambooth-lora "
        f"--image-model {other.name}"
    )
    # The same folder spelled another way is the same base model.
    relative = load_image_model(os.path.relpath(tiny_sd), dtype="float32")
    generate_subject(store, "ana", "rex", relative, FAST, method="textual-inversion")

    photos[1].write_bytes(photos[0].read_bytes())  # the user replaced a reference photo
    for method in ("dreambooth-lora", "textual-inversion"):
        with pytest.raises(
            ValueError, match=f"{method} artifact is stale: its reference images changed"
        ):
            generate_subject(store, "ana", "rex", model, FAST, method=method)


def test_textual_inversion_learns_one_token_loadable_by_diffusers(
    model: DiffusersImageModel, store: SQLiteStore, tiny_sd: Path
) -> None:
    vocab = len(model.pipe.tokenizer)
    rows = model.pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    folder = train_subject(store, "ana", "rex", model, "textual-inversion", TRAIN)
    assert len(model.pipe.tokenizer) == vocab
    assert torch.equal(model.pipe.text_encoder.get_input_embeddings().weight, rows)

    learned = load_file(folder / "learned_embeds.safetensors")
    assert list(learned) == ["<rex>"] and learned["<rex>"].shape == (1, rows.shape[1])
    class_ids = model.pipe.tokenizer("dog", add_special_tokens=False).input_ids
    start = rows[class_ids].mean(dim=0)
    assert not torch.allclose(learned["<rex>"][0], start)  # two steps moved it

    # Plain diffusers loads the embedding and draws what pgen draws at the same seed.
    plain = StableDiffusionPipeline.from_pretrained(tiny_sd)
    plain.set_progress_bar_config(disable=True)
    plain.load_textual_inversion(str(folder / "learned_embeds.safetensors"))
    assert "<rex>" in plain.tokenizer.get_vocab()
    adapted = plain(
        "<rex> dog in the snow",
        num_inference_steps=2,
        guidance_scale=2.0,
        generator=torch.Generator().manual_seed(0),
        height=32,
        width=32,
    ).images

    out = generate_subject(store, "ana", "rex in the snow", model, FAST, method="textual-inversion")
    assert out.prompt == "<rex> dog in the snow"
    np.testing.assert_allclose(_pixels(out.images), _pixels(adapted), atol=2)
    assert len(model.pipe.tokenizer) == vocab  # unloaded again
    # The learned token draws something else than the class word it started from.
    class_word = model.generate(["dog dog in the snow"], FAST)
    assert np.abs(_pixels(out.images) - _pixels(class_word)).mean() > 0.5


def test_ip_adapter_uses_reference_images_zero_shot(
    model: DiffusersImageModel, store: SQLiteStore, tiny_ip_adapter: Path
) -> None:
    spec = IPAdapterSpec(repo=str(tiny_ip_adapter), scale=1.0)
    plain = model.generate(["a dog in the snow"], FAST)
    out = generate_subject(store, "ana", "rex in the snow", model, FAST, ip_adapter=spec)
    assert out.provenance["method"] == "ip-adapter"  # nothing trained: zero-shot
    assert out.prompt == "dog in the snow"
    assert out.provenance["reference_images"] == store.subjects("ana")[0].image_paths
    assert np.abs(_pixels(out.images) - _pixels(plain)).mean() > 0.1
    np.testing.assert_allclose(
        _pixels(model.generate(["a dog in the snow"], FAST)), _pixels(plain), atol=1
    )

    # The same adapter named by its weight file: split into folder and weight name.
    weights = tiny_ip_adapter / "models" / "ip-adapter_sd15.safetensors"
    from_file = IPAdapterSpec.for_model(model, str(weights), scale=1.0)
    assert (from_file.repo, from_file.subfolder) == (str(weights.parent), "")
    assert from_file.weight_name == weights.name
    again = generate_subject(store, "ana", "rex in the snow", model, FAST, ip_adapter=from_file)
    np.testing.assert_allclose(_pixels(again.images), _pixels(out.images), atol=1)
    assert again.provenance["artifacts"] == [str(weights)]
    named = IPAdapterSpec.for_model(model, str(tiny_ip_adapter), weight_name=weights.name)
    assert named == IPAdapterSpec(str(tiny_ip_adapter), "models", weights.name, 0.6)
    with pytest.raises(FileNotFoundError, match="no such file"):
        IPAdapterSpec.for_model(model, str(tiny_ip_adapter / "missing.bin"))


def test_artifacts_are_per_user_and_removed_with_the_user(
    model: DiffusersImageModel, store: SQLiteStore
) -> None:
    folder = train_subject(store, "ana", "rex", model, "dreambooth-lora", TRAIN)
    ana_rex = store.subjects("ana")[0]
    bob_rex = store.subjects("bob")[0]
    assert set(trained(store, "ana", ana_rex)) == {"dreambooth-lora"}
    assert trained(store, "bob", bob_rex) == {}
    with pytest.raises(ValueError, match="no dreambooth-lora artifact"):
        generate_subject(store, "bob", "rex", model, FAST, method="dreambooth-lora")
    counts = store.delete_user("ana")
    assert counts["files"] == 1
    assert not folder.exists()


def test_errors_name_the_user_and_subject(model: DiffusersImageModel, store: SQLiteStore) -> None:
    with pytest.raises(ValueError, match=r"no subject 'max' \(their subjects: rex\)"):
        train_subject(store, "ana", "max", model, "dreambooth-lora", TRAIN)
    with pytest.raises(ValueError, match="unknown training method"):
        train_subject(store, "ana", "rex", model, "ip-adapter", TRAIN)
    with pytest.raises(ValueError, match="names none of user 'ana'"):
        generate_subject(store, "ana", "a cat", model, FAST)


def test_half_precision_model_trains_float32_artifacts(store: SQLiteStore, tiny_sd: Path) -> None:
    half = load_image_model(str(tiny_sd), dtype="bfloat16")
    folder = train_subject(store, "ana", "rex", half, "dreambooth-lora", TRAIN)
    weights = load_file(folder / "pytorch_lora_weights.safetensors")
    assert {w.dtype for w in weights.values()} == {torch.float32}
    assert half.pipe.unet.dtype == torch.bfloat16 and not hasattr(half.pipe.unet, "peft_config")
    folder = train_subject(store, "ana", "rex", half, "textual-inversion", TRAIN)
    assert load_file(folder / "learned_embeds.safetensors")["<rex>"].dtype == torch.float32
    assert half.pipe.text_encoder.dtype == torch.bfloat16
    out = generate_subject(store, "ana", "rex", half, FAST, method="dreambooth-lora")
    assert out.images[0].size == (32, 32)


@pytest.mark.parametrize("method", ["dreambooth-lora", "textual-inversion"])
def test_a_cancelled_subject_training_stops_between_steps_and_saves_nothing(
    model: DiffusersImageModel, store: SQLiteStore, method: str
) -> None:
    """What a service job's cancel does to a subject run: asked before every step, it
    stops at the first yes, leaves no artifact and the shared model as it was."""
    vocabulary = len(model.pipe.tokenizer)
    asked: list[int] = []

    def stop_after_two_steps() -> bool:
        asked.append(1)
        return len(asked) > 2

    trainer = get_trainer(method)
    assert stoppable(trainer)
    request = TrainRequest("ana", method, subject="rex", settings=TRAIN, steps=50)
    with pytest.raises(TrainingCancelled):
        trainer.train(
            replace(request, should_stop=stop_after_two_steps),
            image_tools(store, model),
        )
    assert len(asked) == 3  # two steps ran, the third was refused: not all 50
    assert trained(store, "ana", store.subjects("ana")[0]) == {}
    assert not hasattr(model.pipe.unet, "peft_config")
    assert len(model.pipe.tokenizer) == vocabulary
    # Not cancelled, the same request trains its 50 steps (steps override the settings').
    folder = trainer.train(request, image_tools(store, model))
    assert len(read_metadata(folder)["losses"]) == 50


@pytest.mark.parametrize("method", ["dreambooth-lora", "textual-inversion"])
def test_subject_training_reports_each_step_through_on_step_and_pgens_bar(
    model: DiffusersImageModel,
    store: SQLiteStore,
    method: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    seen: list[TrainStep] = []
    settings = replace(TRAIN, steps=3, progress=True)
    request = TrainRequest("ana", method, subject="rex", settings=settings, on_step=seen.append)
    capfd.readouterr()
    folder = get_trainer(method).train(request, image_tools(store, model))
    meta = read_metadata(folder)
    assert [(s.step, s.total, s.users) for s in seen] == [(n, 3, ("ana",)) for n in (1, 2, 3)]
    assert [s.loss for s in seen] == meta["losses"]  # the run's own losses, finite
    assert all(np.isfinite(s.loss) for s in seen)
    err = capfd.readouterr().err
    assert f"training {method}" in err and "3/3" in err and "loss=" in err  # pgen's bar
    assert "progress" not in meta["config"]  # how it was shown is no setting of the artifact
