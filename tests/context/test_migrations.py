"""An old store upgrades in place when the current code opens it."""

from __future__ import annotations

from pathlib import Path

from tests.context.conftest import Backend


def test_outputs_of_an_old_store_gain_a_modality_and_media(backend: Backend, home: Path) -> None:
    images = ["/h/a/00.png", "/h/a/01.png"]
    old = backend.old_store(
        home,
        [
            {"output_id": "o1", "provenance": {"doc_ids": ["d1"]}},
            {"output_id": "o2", "provenance": {"images": images, "prompt": "p"}},
        ],
    )
    store = backend.open(home)
    try:
        assert getattr(store, "schema_version", old + 1) > old
        text, image = store.output("old", "o1"), store.output("old", "o2")
        assert (text.modality, text.media) == ("text", [])
        assert (image.modality, image.media) == ("image", images)
        assert image.provenance["prompt"] == "p"
        new = store.save_output("old", "i", "s", "t", {}, modality="image", media=["x.png"])
        assert store.output("old", new.output_id).media == ["x.png"]
        counts = store.delete_user("old")
        assert counts["outputs"] == 3 and counts["output_media"] == 3
    finally:
        store.close()
