"""`pgen generate-image`, `pgen train-subject` and `pgen bench dreambench` on tiny models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from pgen.cli.main import main
from pgen.context import Interaction, Item, Subject, User
from pgen.context.sqlite import SQLiteStore
from pgen.personalize import subject
from pgen.training.subject_artifacts import read_metadata


@pytest.fixture
def store_path(tmp_path: Path, reference_images: list[Path]) -> Path:
    path = tmp_path / "pgen.sqlite"
    with SQLiteStore(path) as store:
        store.add(
            [
                User(user_id="ana"),
                Subject(
                    user_id="ana",
                    name="rex",
                    class_word="dog",
                    image_paths=[str(p) for p in reference_images],
                ),
                Item(item_id="m1", title="Blade Runner", text="neon noir city"),
                Interaction(user_id="ana", item_id="m1", rating=5),
            ]
        )
    return path


def _run(store_path: Path, *argv: str) -> int:
    return main(["--store", str(store_path), "--home", str(store_path.parent), *argv])


def test_cli_choices_come_from_the_registry() -> None:
    from pgen.cli.main import build_parser
    from pgen.personalize import strategy_names

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    choices = {a.dest: a.choices for a in sub["generate-image"]._actions}
    assert (
        list(choices["strategy"])
        == strategy_names("image")
        == ["none", "subject", "keywords", "subjects", "face-id"]
    )
    assert list(choices["method"]) == list(subject.METHODS)
    train = {a.dest: a.choices for a in sub["train-subject"]._actions}
    assert list(train["method"]) == list(subject.TRAINERS)


def test_train_then_generate_then_delete_user(
    store_path: Path, tiny_sd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--image-model", str(tiny_sd), "--steps", "2", "--seed", "3"]
    assert (
        _run(
            store_path,
            "train-subject",
            "--user",
            "ana",
            "--subject",
            "rex",
            "--method",
            "textual-inversion",
            "--train-steps",
            "2",
            *model,
        )
        == 0
    )
    assert "token '<rex>', 2 steps" in capsys.readouterr().out

    assert (
        _run(
            store_path,
            "generate-image",
            "--user",
            "ana",
            "--json",
            "--images",
            "2",
            *model,
            "rex in the snow",
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert record["method"] == "textual-inversion" and record["prompt"] == "<rex> dog in the snow"
    assert len(record["images"]) == 2
    assert Image.open(record["images"][0]).size == (32, 32)
    with SQLiteStore(store_path) as store:
        [output] = store.outputs("ana")
        assert output.output_id == record["output_id"] and output.strategy == "subject"
        assert output.provenance["subjects"] == ["rex"]
        store.delete_user("ana")
    assert not any(Path(p).exists() for p in record["images"])


def test_generate_none_and_keywords(
    store_path: Path,
    tiny_sd: Path,
    tiny_llama: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = ["--image-model", str(tiny_sd), "--steps", "2"]
    assert (
        _run(
            store_path,
            "generate-image",
            "--user",
            "ana",
            "--strategy",
            "none",
            "--out",
            str(tmp_path / "out"),
            *model,
            "a dog",
        )
        == 0
    )
    assert (tmp_path / "out" / "00.png").is_file()
    assert "strategy none" in capsys.readouterr().out
    assert (
        main(
            [
                "--store",
                str(store_path),
                "--text-model",
                str(tiny_llama),
                "generate-image",
                "--user",
                "ana",
                "--strategy",
                "keywords",
                "--json",
                *model,
                "a city",
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert record["items"] == ["m1"] and record["weight"] == 0.3


def test_errors_are_one_line(
    store_path: Path, tiny_sd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(store_path, "generate-image", "--user", "zoe", "x") == 1
    assert "no user 'zoe'" in capsys.readouterr().err
    assert (
        _run(
            store_path,
            "train-subject",
            "--user",
            "ana",
            "--subject",
            "max",
            "--image-model",
            str(tiny_sd),
        )
        == 1
    )
    assert "pgen: error: user 'ana' has no subject 'max'" in capsys.readouterr().err


def test_bench_dreambench_writes_table_and_record(
    tmp_path: Path,
    store_path: Path,
    reference_images: list[Path],
    tiny_sd: Path,
    tiny_clip: Path,
    tiny_dino: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "db"
    (root / "dog").mkdir(parents=True)
    for path in reference_images[:2]:
        shutil.copy(path, root / "dog" / path.name)
    (root / "prompts_and_classes.txt").write_text(
        "subject_name,class\ndog,dog\nObject Prompts\n'a {0} {1}'.format(unique_token, class_token)"
        "\nLive Subject Prompts\n'a {0} {1} in the snow'.format(unique_token, class_token)\n"
    )
    out = tmp_path / "result"
    assert (
        _run(
            store_path,
            "bench",
            "dreambench",
            "--data",
            str(root),
            "--methods",
            "dreambooth-lora",
            "--images-per-prompt",
            "1",
            "--train-steps",
            "1",
            "--rank",
            "2",
            "--lr",
            "0.01",
            "--prior-preservation",
            "--class-images",
            "1",
            "--image-model",
            str(tiny_sd),
            "--steps",
            "2",
            "--clip-model",
            str(tiny_clip),
            "--dino-model",
            str(tiny_dino),
            "--out",
            str(out),
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| real images |" in printed and "| dreambooth-lora |" in printed
    result = json.loads((out / "result.json").read_text())
    assert result["rows"]["dreambooth-lora"]["images"] == 1
    training = result["record"]["settings"]["training"]
    assert (training["rank"], training["learning_rate"]) == (2, 0.01)
    assert training["prior_preservation"] and training["class_images"] == 1
    # Without --data the command says what it needs instead of guessing a folder.
    assert _run(store_path, "bench", "dreambench", "--image-model", str(tiny_sd)) == 1
    assert "bench dreambench needs --data DIR" in capsys.readouterr().err
    assert (out / "table.md").read_text().startswith("| method | DINO | CLIP-I | CLIP-T |")


def test_engine_generates_subject_images_from_python(
    store_path: Path, tiny_sd: Path, tiny_llama: Path
) -> None:
    from pgen.engine import Engine
    from pgen.models.image import ImageGenerationSettings, load_image_model
    from pgen.models.text import load_text_model
    from pgen.personalize import ImageRequest

    with SQLiteStore(store_path) as store:
        engine = Engine(
            store,
            load_text_model(str(tiny_llama)),
            lambda: pytest.fail("image generation needs no embedder"),
            image_model=load_image_model(str(tiny_sd)),
        )
        sampling = ImageGenerationSettings(steps=2, seed=1)
        with pytest.raises(ValueError, match="unknown image strategy 'lora'"):
            engine.generate_image(ImageRequest("ana", "rex", strategy="lora"))
        result = engine.generate_image(ImageRequest("ana", "a city", "keywords"), sampling)
        assert result.strategy == "keywords" and result.provenance.items == ["m1"]
        assert [p.name for p in result.paths] == ["00.png"] and result.paths[0].is_file()
        [output] = store.outputs("ana")
        assert output.output_id == result.output_id
        assert output.provenance["images"] == [str(result.paths[0])]
        engine.delete_user("ana")
        assert not result.paths[0].exists()


def test_train_dreambooth_lora_with_options_then_ip_adapter_from_a_file(
    store_path: Path, tiny_sd: Path, tiny_ip_adapter: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import load_file

    model = ["--image-model", str(tiny_sd), "--steps", "2"]
    argv = ["train-subject", "--user", "ana", "--subject", "rex", "--method", "dreambooth-lora"]
    argv += ["--train-steps", "2", "--rank", "2", "--lr", "0.01", "--prior-preservation"]
    assert _run(store_path, *argv, "--class-images", "1", *model) == 0
    printed = capsys.readouterr().out
    assert (
        "trained dreambooth-lora for subject 'rex' of user 'ana': token 'sks', 2 steps" in printed
    )
    folder = Path(printed.split("artifact: ")[1].strip())
    meta = read_metadata(folder)
    assert meta["config"]["rank"] == 2 and meta["config"]["learning_rate"] == 0.01
    assert meta["config"]["prior_preservation"] and len(meta["losses"]) == 2
    downs = [
        w
        for k, w in load_file(folder / "pytorch_lora_weights.safetensors").items()
        if "lora.down" in k
    ]
    assert downs and all(w.shape[0] == 2 for w in downs)  # --rank reached the adapter

    weights = tiny_ip_adapter / "models" / "ip-adapter_sd15.safetensors"
    argv = ["generate-image", "--user", "ana", "--method", "ip-adapter", "--json"]
    assert _run(store_path, *argv, "--ip-adapter", str(weights), *model, "rex in the snow") == 0
    record = json.loads(capsys.readouterr().out)
    assert record["method"] == "ip-adapter" and record["artifacts"] == [str(weights)]


def test_offline_without_an_image_model_says_so_before_anything_loads(
    store_path: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    for strategy in ("none", "keywords", "subject"):
        argv = ["generate-image", "--user", "ana", "--strategy", strategy, "rex on a beach"]
        assert _run(store_path, *argv) == 1
        err = capfd.readouterr().err
        assert err.startswith("pgen: error: no image model is installed: ")
        assert "--image-model PATH" in err and "image_model" in err
        assert "model_index.json" not in err and "Warning" not in err
        assert len(err.strip().splitlines()) == 1  # one line: no third-party warnings
    # The subject strategy checks the user's subjects first.
    argv = ["generate-image", "--user", "ana", "--strategy", "subject", "a cat on a beach"]
    assert _run(store_path, *argv) == 1
    assert "names none of user 'ana''s subjects (rex)" in capfd.readouterr().err


def test_the_image_model_loads_before_keywords_loads_the_text_model(store_path: Path) -> None:
    from pgen.engine import Engine
    from pgen.errors import InvalidRequest
    from pgen.personalize import ImageRequest

    loaded: list[str] = []

    def text_model() -> object:
        loaded.append("text")
        raise AssertionError("the text model loaded before the image model")

    def image_model() -> object:
        loaded.append("image")
        raise InvalidRequest("no image model is installed")

    with SQLiteStore(store_path) as store:
        engine = Engine(store, text_model, text_model, image_model=image_model)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest, match="no image model"):
            engine.generate_image(ImageRequest("ana", "a city", "keywords"))
        assert loaded == ["image"]
        with pytest.raises(InvalidRequest, match="names none of user 'ana''s subjects"):
            engine.check(ImageRequest("ana", "a cat", "subject"))
        assert loaded == ["image"]
