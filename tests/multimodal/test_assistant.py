"""The assistant end to end on real DreamBench photos and the real EfficientNet-Lite0:
subjects in → concept memory → ask with concepts (a local VLM server sees the prompt, and
a tiny random LLaVA runs it) → provenance → photo search → delete-user leaves nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pgen.cli.main import main
from pgen.context.records import Document, Subject, User
from pgen.context.sqlite import SQLiteStore
from pgen.models.image_embedding import EfficientNetEmbedder, load_image_embedder
from pgen.models.image_input import ImageInputError
from pgen.models.vision import OpenAIVisionModel, TransformersVisionModel
from pgen.usermodel.concepts import Calibration
from tests.conftest import shared_data
from tests.multimodal.conftest import RecordingServer, photo_engine

REX_ABOUT = "A corgi with a white chest who loves the beach."
PHOTOS = {
    "p1": "dog/03.jpg",
    "p2": "dog/04.jpg",
    "p3": "teapot/03.jpg",
    "p4": "cat/03.jpg",
    "p5": "vase/00.jpg",
}


@pytest.fixture
def bench() -> Path:
    return shared_data("dreambench").resolve()


@pytest.fixture
def store(tmp_path: Path, bench: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    refs = {
        name: [str(bench / name / f"0{i}.jpg") for i in range(3)]
        for name in ("dog", "teapot", "cat")
    }
    store.add(
        [
            User(user_id="ann"),
            Subject(user_id="ann", name="Rex", class_word="dog", image_paths=refs["dog"]),
            Subject(user_id="ann", name="Kettle", class_word="teapot", image_paths=refs["teapot"]),
            Subject(user_id="ann", name="Mochi", class_word="cat", image_paths=refs["cat"]),
            Document(
                user_id="ann", doc_id="about-rex", kind="concept", title="Rex", text=REX_ABOUT
            ),
            *[
                Document(
                    user_id="ann",
                    doc_id=doc,
                    kind="photo",
                    text="",
                    fields={"image_path": str(bench / rel)},
                )
                for doc, rel in PHOTOS.items()
            ],
            User(user_id="bob"),
        ]
    )
    return store


def _assistant(
    store: SQLiteStore, model: object, embedder: EfficientNetEmbedder, bench: Path
) -> Any:
    return photo_engine(store, model, embedder, allowed=[bench])


def test_concepts_put_the_recognized_concept_in_the_prompt(
    store: SQLiteStore, efficientnet: EfficientNetEmbedder, vlm_server: RecordingServer, bench: Path
) -> None:
    assistant = _assistant(store, OpenAIVisionModel(vlm_server.url, "vlm"), efficientnet, bench)
    answer = assistant.answer("ann", bench / "dog" / "03.jpg", "What is in this photo?")
    assert answer.provenance["subjects"] == ["Rex"]
    assert answer.text.startswith("2 images;")  # Rex's reference image, then the photo
    prompt = vlm_server.requests[-1]["messages"][-1]["content"][-1]["text"]
    assert f"Image 1: <Rex> is the user's dog. {REX_ABOUT}" in prompt
    assert prompt.endswith("What is in this photo?")
    names = [c["name"] for c in answer.provenance["concepts"]]
    assert names[0] == "Rex" and answer.provenance["concepts"][0]["accepted"]
    assert answer.provenance["concepts"][0]["reference"].endswith("dog/00.jpg")
    assert answer.provenance["embedder"] == efficientnet.model_id
    stored = store.output("ann", answer.output_id)
    assert stored.strategy == "concepts" and stored.provenance["subjects"] == ["Rex"]

    baseline = assistant.answer(
        "ann", bench / "dog" / "03.jpg", "What is in this photo?", strategy="none"
    )
    assert (
        baseline.text == "1 images; What is in this photo?"
        and baseline.provenance["subjects"] == []
    )


def test_a_photo_of_none_of_the_concepts_says_so(
    store: SQLiteStore, efficientnet: EfficientNetEmbedder, vlm_server: RecordingServer, bench: Path
) -> None:
    assistant = _assistant(store, OpenAIVisionModel(vlm_server.url, "vlm"), efficientnet, bench)
    answer = assistant.answer("ann", bench / "backpack" / "00.jpg", "Is Rex in this photo?")
    assert answer.provenance["subjects"] == []
    assert not any(c["accepted"] for c in answer.provenance["concepts"])
    assert answer.text.startswith("1 images; None of the user's personal concepts is recognized")
    # Another user has no concepts: nothing of ann's reaches bob's prompt.
    theirs = assistant.answer("bob", bench / "dog" / "03.jpg", "Who is this?")
    assert theirs.provenance["subjects"] == [] and theirs.provenance["concepts"] == []


def test_an_operator_negative_pool_rejects_a_look_alike(
    store: SQLiteStore, efficientnet: EfficientNetEmbedder, vlm_server: RecordingServer, bench: Path
) -> None:
    """A vase looks like ann's teapot to EfficientNet (cosine 0.49, as close as one of the
    teapot's own photos): with only ann's other concepts as negatives, it passes as
    Kettle. Vases in the operator's negative pool raise Kettle's bar above it, while a
    clear photo of the teapot still passes."""
    model = OpenAIVisionModel(vlm_server.url, "vlm")
    plain = _assistant(store, model, efficientnet, bench)
    assert plain.answer("ann", bench / "vase" / "00.jpg", "Is Kettle here?").provenance[
        "subjects"
    ] == ["Kettle"]
    pool = [bench / "vase" / "01.jpg", bench / "vase" / "02.jpg"]
    pooled = photo_engine(store, model, efficientnet, allowed=[bench], negative_pool=pool)
    assert (
        pooled.answer("ann", bench / "vase" / "00.jpg", "Is Kettle here?").provenance["subjects"]
        == []
    )
    assert pooled.answer("ann", bench / "teapot" / "04.jpg", "Is Kettle here?").provenance[
        "subjects"
    ] == ["Kettle"]


def test_bad_photos_fail_first_and_write_nothing(
    store: SQLiteStore,
    efficientnet: EfficientNetEmbedder,
    tmp_path: Path,
    bench: Path,
    tiny_vlm: Path,
) -> None:
    cut = tmp_path / "cut.jpg"
    cut.write_bytes((bench / "dog" / "03.jpg").read_bytes()[:2000])
    inside = store.artifacts_root / "someone" / "x.jpg"  # another user's files live there
    inside.parent.mkdir(parents=True)
    inside.write_bytes((bench / "dog" / "03.jpg").read_bytes())
    for allowed, path, why in [
        ([tmp_path], cut, "cut.jpg': cannot be decoded"),
        ([bench], cut, "cut.jpg': outside the allowed folders"),
        ([tmp_path], inside, "x.jpg': points into the store's own files"),
    ]:
        assistant = photo_engine(
            store, lambda: TransformersVisionModel(str(tiny_vlm)), efficientnet, allowed=allowed
        )
        with pytest.raises(ImageInputError, match=why):
            assistant.answer("ann", path, "hi")
    assert store.outputs("ann") == []
    assert store.row_counts()["image_embeddings"] == 0
    with pytest.raises(ValueError, match="unknown vision strategy 'tokens'"):
        assistant.answer("ann", cut, "hi", strategy="tokens")


def test_tiny_llava_end_to_end_and_delete_user_leaves_nothing(
    store: SQLiteStore, efficientnet: EfficientNetEmbedder, tiny_vlm: Path, bench: Path
) -> None:
    from pgen.models.base import GenerationSettings

    model = TransformersVisionModel(str(tiny_vlm), name="tiny-llava")
    assistant = photo_engine(
        store, model, efficientnet, allowed=[bench], generation=GenerationSettings(max_new_tokens=4)
    )
    answer = assistant.answer("ann", bench / "teapot" / "04.jpg", "Describe this photo.")
    assert (
        answer.provenance["subjects"] == ["Kettle"] and answer.provenance["model"] == "tiny-llava"
    )
    assert isinstance(answer.text, str)
    hits = assistant.search_photos("ann", "Rex", k=5)
    assert {h.doc_id for h in hits[:2]} == {"p1", "p2"}
    assert store.row_counts("ann")["image_embeddings"] > 0
    root = store.artifacts_root
    counts = store.delete_user("ann")
    assert counts["image_embeddings"] == (9 + 5) * 3 and counts["outputs"] == 1
    assert store.row_counts("ann")["image_embeddings"] == 0
    assert store.row_counts("ann")["outputs"] == 0
    assert not any(root.glob("ann*")) if root.exists() else True


def test_photo_search_by_concept_and_composed(
    store: SQLiteStore, efficientnet: EfficientNetEmbedder, tiny_clip: Path, bench: Path
) -> None:
    assistant = photo_engine(store, lambda: None, efficientnet, allowed=[bench])
    hits = assistant.search_photos("ann", "rex at the beach", k=5)
    assert [h.doc_id for h in hits[:2]] in (["p1", "p2"], ["p2", "p1"])
    assert hits.unused_words == "at the beach"  # no text-image embedder: said, not hidden
    assert hits[0].concepts["Rex"] > Calibration().alpha > hits[2].concepts["Rex"]
    both = assistant.search_photos("ann", "Mochi and Kettle", k=5)
    assert set(both[0].concepts) == {"Mochi", "Kettle"}
    assert both.unused_words == ""  # "and" carries nothing to search by
    with pytest.raises(ValueError, match="names none of the user's concepts"):
        assistant.search_photos("ann", "a sunset")
    clip = load_image_embedder(str(tiny_clip))
    worded = photo_engine(
        store, lambda: None, efficientnet, allowed=[bench], text_image_embedder=clip
    )
    assert len(worded.search_photos("ann", "a sunset", k=3)) == 3  # by words alone
    composed = worded.search_photos("ann", "Rex at the beach", k=5)
    assert {h.doc_id for h in composed} == set(PHOTOS) and "Rex" in composed[0].concepts
    assert composed.unused_words == ""


def test_cli_ask_and_search_photos(
    store: SQLiteStore,
    tiny_vlm: Path,
    bench: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store.close()
    base = ["--store", str(tmp_path / "pgen.sqlite"), "--home", str(tmp_path), "--threads", "1"]
    code = main(
        [
            *base,
            "ask",
            "--user",
            "ann",
            "--image",
            str(bench / "dog" / "04.jpg"),
            "--vision-model",
            str(tiny_vlm),
            "--allow",
            str(bench),
            "--max-new-tokens",
            "3",
            "--json",
            "What is Rex doing?",
        ]
    )
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["subjects"] == ["Rex"] and record["output_id"]
    assert main([*base, "search-photos", "--user", "ann", "--allow", str(bench), "Rex"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {lines[0].split()[2], lines[1].split()[2]} == {"p1", "p2"}
    assert "not used" not in "\n".join(lines)
    search = [*base, "search-photos", "--user", "ann", "--allow", str(bench)]
    assert main([*search, "Rex at the beach"]) == 0
    out = capsys.readouterr().out
    assert "[not used: 'at the beach': searching by words needs a text-image embedder" in out
    assert (
        main(
            [
                *base,
                "ask",
                "--user",
                "ann",
                "--image",
                str(tmp_path / "nope.jpg"),
                "--vision-model",
                str(tiny_vlm),
                "--allow",
                str(tmp_path),
                "hi",
            ]
        )
        == 1
    )
    assert "nope.jpg': no such file" in capsys.readouterr().err


def test_bench_concepts_on_dreambench(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    code = main(
        [
            "--home",
            str(tmp_path),
            "--threads",
            "1",
            "bench",
            "concepts",
            "--data",
            str(bench),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["embedder"].startswith("efficientnet-lite0#") and result["references"] == 3
    assert result["identification_top1"]["value"] >= 0.9
    assert result["retrieval"]["map"]["value"] >= 0.9
    recognition = result["recognition"]["per-concept"]
    assert recognition["f1"]["value"] >= 0.8
    assert recognition["f1"]["low"] <= recognition["f1"]["value"] <= recognition["f1"]["high"]
    runs = result["recognition"]["runs"]
    assert len(runs) == 5 * 6  # 5 fold assignments x ordered (fit, user, strangers) triples
    for run in runs:  # no subject is fit on and tested in the same run
        assert not set(run["fit"]) & (set(run["user"]) | set(run["strangers"]))
        assert not set(run["user"]) & set(run["strangers"])
    assert result["recognition"]["per-concept"]["open_set_identification"]["value"] >= 0.8
    paired = result["recognition"]["f1_per_concept_minus_global"]
    assert paired["low"] <= paired["value"] <= paired["high"]
    assert "top-1 identification" in capsys.readouterr().out
    from pgen.usermodel.concepts import Calibration

    saved = Calibration.load(out / "calibration.json")  # what --calibration takes
    assert saved.fitted_on == result["subjects"] and 0 < saved.alpha < 2


def test_the_assistant_commands_load_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, argparse, pgen.cli.photos as c\n"
        "top, bench = argparse.ArgumentParser(), argparse.ArgumentParser()\n"
        "c.register(top.add_subparsers(), bench.add_subparsers())\n"
        "top.parse_args(['ask', '--user', 'u', '--image', 'x.jpg', 'hi'])\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_bench_concepts_captions_on_a_tiny_vlm(
    bench: Path, tmp_path: Path, tiny_vlm: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    argv = ["--home", str(tmp_path), "--threads", "1", "bench", "concepts", "--data", str(bench)]
    argv += ["--subjects", "dog,cat,teapot", "--repeats", "1", "--out", str(out)]
    argv += [
        "--vision-model",
        str(tiny_vlm),
        "--caption-strategies",
        "none,concepts,concept-tokens",
    ]
    argv += ["--token-steps", "2", "--max-new-tokens", "3"]
    assert main(argv) == 0
    captions = json.loads((out / "result.json").read_text())["captions"]
    assert captions["photos"] == 2 + 2 + 2  # 5 photos each, 3 references
    # Retrieval puts the right concept into every concepts prompt; none never does;
    # concept tokens introduce every trained concept.
    assert captions["concepts"]["prompt_rate"]["value"] == 1.0
    assert captions["none"]["prompt_rate"]["value"] == 0.0
    assert captions["concept-tokens"]["prompt_rate"]["value"] == 1.0
    for strategy in ("none", "concepts", "concept-tokens"):
        assert 0.0 <= captions[strategy]["name_rate"]["value"] <= 1.0
        assert len(captions[strategy]["captions"]) == 6
    assert "caption name rate (concepts)" in capsys.readouterr().out


def test_ask_without_a_vlm_answers_with_the_concepts_recognized(
    store: SQLiteStore,
    efficientnet: EfficientNetEmbedder,
    bench: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assistant = _assistant(store, lambda: None, efficientnet, bench)  # no VLM configured
    answer = assistant.answer("ann", bench / "dog" / "03.jpg", "What is in this photo?")
    assert answer.text.startswith("Recognized in this photo: Rex (confidence ")
    assert "a VLM would describe the scene" in answer.text and "--vision-model" in answer.text
    assert answer.provenance["subjects"] == ["Rex"]
    backpack = assistant.answer("ann", bench / "backpack" / "00.jpg", "What is in this photo?")
    assert backpack.text.startswith("None of your concepts is recognized in this photo.")
    assert "Not recognized: " in backpack.text
    with pytest.raises(ValueError, match="only the concepts strategy answers"):
        assistant.answer("ann", bench / "dog" / "03.jpg", "hi", strategy="none")

    store.close()
    monkeypatch.delenv("PGEN_VISION_MODEL", raising=False)
    base = ["--store", str(tmp_path / "pgen.sqlite"), "--home", str(tmp_path), "--threads", "1"]
    photo = str(bench / "dog" / "04.jpg")
    args = ["ask", "--user", "ann", "--image", photo, "--allow", str(bench), "What is this?"]
    assert main([*base, *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Recognized in this photo: Rex (confidence ")
    assert "No vision-language model is configured: a VLM would describe the scene" in out
    assert "concepts used: Rex]" in out
