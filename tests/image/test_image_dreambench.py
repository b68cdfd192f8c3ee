"""The DreamBench runner end to end on tiny models: a synthetic layout always, and two
subjects of the real data set when ../shared/data/dreambench is present."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from pgen.bench.dreambench import (
    DreamBench,
    DreamBenchSettings,
    format_table,
    load_dreambench,
    run_dreambench,
)
from pgen.evaluate.metrics.image import (
    ClipEncoder,
    DinoEncoder,
    clip_i,
    clip_t,
    dino_i,
    mean_pairwise_cosine,
)
from pgen.models.image import ImageGenerationSettings, load_image_model
from pgen.personalize.subject import IPAdapterSpec
from pgen.training.subject_artifacts import SubjectTrainingSettings
from tests.conftest import shared_data

PROMPTS = """Classes

subject_name,class
backpack,backpack
dog,dog
teapot,teapot

Prompts

Object Prompts

prompt_list = [
'a {0} {1} in the jungle'.format(unique_token, class_token),
'a red {0} {1}'.format(unique_token, class_token)
]

Live Subject Prompts

prompt_list = [
'a {0} {1} in the snow'.format(unique_token, class_token),
'a {0} {1} wearing a red hat'.format(unique_token, class_token),
'a cube shaped {0} {1}'.format(unique_token, class_token)
]
"""


@pytest.fixture
def bench_root(tmp_path: Path, reference_images: list[Path]) -> Path:
    root = tmp_path / "dreambench"
    for name in ("backpack", "dog"):
        (root / name).mkdir(parents=True)
        for path in reference_images[:2]:
            shutil.copy(path, root / name / path.name)
    (root / "prompts_and_classes.txt").write_text(PROMPTS)
    return root


def _config(
    tiny_clip: Path, tiny_dino: Path, tiny_ip_adapter: Path, **extra: object
) -> DreamBenchSettings:
    return DreamBenchSettings(
        images_per_prompt=2,
        training=SubjectTrainingSettings(steps=1),
        generation=ImageGenerationSettings(steps=2, guidance_scale=2.0),
        ip_adapter=IPAdapterSpec(repo=str(tiny_ip_adapter)),
        clip_model=str(tiny_clip),
        dino_model=str(tiny_dino),
        **extra,  # type: ignore[arg-type]
    )


def _check_scores(
    result: dict,
    bench: DreamBench,
    work: Path,
    tiny_clip: Path,
    tiny_dino: Path,
    texts: dict[str, list[str]],
) -> None:
    """Every per-subject number equals the metric called directly on the saved images (so a
    swapped metric, a wrong reference set or a prompt paired with another image's fails),
    and every row is the mean over subjects. ``texts``: the CLIP-T prompt of each saved
    image of a subject, in file name order."""
    clip, dino = ClipEncoder(str(tiny_clip)), DinoEncoder(str(tiny_dino))
    for method, subjects in result["per_subject"].items():
        assert list(subjects) == [s.name for s in bench.subjects]
        for subject in bench.subjects:
            got = subjects[subject.name]
            if method == "real images":
                d, c = dino.images(subject.images), clip.images(subject.images)
                assert got["dino"] == pytest.approx(mean_pairwise_cosine(d, d, same_set=True))
                assert got["clip_i"] == pytest.approx(mean_pairwise_cosine(c, c, same_set=True))
                continue
            saved = sorted((work / "images" / method / subject.name).glob("*.png"))
            assert got["images"] == len(saved) == len(texts[subject.name])
            assert got["dino"] == pytest.approx(dino_i(saved, subject.images, dino), abs=1e-6)
            assert got["clip_i"] == pytest.approx(clip_i(saved, subject.images, clip), abs=1e-6)
            expected = clip_t(saved, texts[subject.name], clip)
            assert got["clip_t"] == pytest.approx(expected, abs=1e-6)
        row = result["rows"][method]
        for metric in ("dino", "clip_i", "clip_t"):
            if metric in row:
                mean = sum(s[metric] for s in subjects.values()) / len(subjects)
                assert row[metric] == pytest.approx(mean)


def test_loader_reads_classes_prompts_and_present_subjects(bench_root: Path) -> None:
    bench = load_dreambench(bench_root)
    assert [(s.name, s.class_word, s.live) for s in bench.subjects] == [
        ("backpack", "backpack", False),
        ("dog", "dog", True),
    ]  # teapot has a class but no folder here
    assert bench.object_prompts == ["a {0} {1} in the jungle", "a red {0} {1}"]
    assert len(bench.templates(bench.subjects[1])) == 3
    with pytest.raises(ValueError, match=r"no subjects \['cat'\]"):
        load_dreambench(bench_root, ["cat"])
    with pytest.raises(FileNotFoundError, match=r"prompts_and_classes\.txt"):
        load_dreambench(bench_root / "dog")


def test_runner_produces_the_standard_table(
    bench_root: Path,
    tmp_path: Path,
    tiny_sd: Path,
    tiny_clip: Path,
    tiny_dino: Path,
    tiny_ip_adapter: Path,
) -> None:
    model = load_image_model(str(tiny_sd), dtype="float32")
    config = _config(tiny_clip, tiny_dino, tiny_ip_adapter, prompts_per_subject=2)
    bench = load_dreambench(bench_root)
    result = run_dreambench(bench, model, config, tmp_path / "run")
    rows = result["rows"]
    assert list(rows) == ["real images", "dreambooth-lora", "textual-inversion", "ip-adapter"]
    for method in ("dreambooth-lora", "textual-inversion", "ip-adapter"):
        assert rows[method]["images"] == 2 * 2 * 2  # subjects x prompts x images per prompt
        made = sorted((tmp_path / "run" / "images" / method / "dog").glob("*.png"))
        assert [p.name for p in made] == ["00-0.png", "00-1.png", "01-0.png", "01-1.png"]
        assert Image.open(made[0]).size == (32, 32)
    # CLIP-T reads each prompt without the learned token: the dog is live, the backpack not.
    texts = {
        "backpack": ["a backpack in the jungle"] * 2 + ["a red backpack"] * 2,
        "dog": ["a dog in the snow"] * 2 + ["a dog wearing a red hat"] * 2,
    }
    _check_scores(result, bench, tmp_path / "run", tiny_clip, tiny_dino, texts)
    table = format_table(result)
    assert table.splitlines()[2].startswith("| real images | ")
    assert "| dreambooth-lora | " in table
    json.dumps(result)  # the record is plain JSON
    record = result["record"]  # the shape every benchmark writes (pgen.evaluate.run_record)
    assert record["task"] == "dreambench" and len(record["data"]["sha256"]) == 64
    assert record["packages"]["diffusers"] and record["machine"]["cpus"]
    assert record["model"]["image_model"] and record["settings"]["images_per_prompt"] == 2


def test_two_real_dreambench_subjects(
    tmp_path: Path, tiny_sd: Path, tiny_clip: Path, tiny_dino: Path, tiny_ip_adapter: Path
) -> None:
    bench = load_dreambench(shared_data("dreambench"), ["dog", "backpack"])
    assert len(bench.object_prompts) == 25 and len(bench.live_prompts) == 25
    assert bench.subjects[0].live and not bench.subjects[1].live
    model = load_image_model(str(tiny_sd), dtype="float32")
    config = _config(
        tiny_clip,
        tiny_dino,
        tiny_ip_adapter,
        prompts_per_subject=1,
        methods=("dreambooth-lora", "ip-adapter"),
    )
    config = DreamBenchSettings(**{**config.__dict__, "images_per_prompt": 1})
    result = run_dreambench(bench, model, config, tmp_path)
    assert result["record"]["settings"]["subjects"] == ["dog", "backpack"]
    assert result["rows"]["ip-adapter"]["images"] == 2
    assert result["rows"]["dreambooth-lora"]["images"] == 2
    texts = {
        s.name: [" ".join(bench.templates(s)[0].format("", s.class_word).split())]
        for s in bench.subjects
    }
    assert texts["dog"] == ["a dog in the jungle"]
    _check_scores(result, bench, tmp_path, tiny_clip, tiny_dino, texts)
