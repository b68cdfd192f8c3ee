"""Fixtures for the multimodal assistant: a tiny random LLaVA folder, a tiny CLIP folder,
the real EfficientNet-Lite0 embedder, small photos, and a local OpenAI-compatible server
that records what it is sent (started in a thread; no network)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pgen.models.image_embedding import EfficientNetEmbedder
from tests.builders.vision_models import save_tiny_idefics3, save_tiny_vlm
from tests.image.conftest import tiny_clip, tiny_dino  # the image tests' tiny models

__all__ = ["tiny_clip", "tiny_dino"]  # re-exported as fixtures of this folder


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_vlm(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="session")
def tiny_idefics3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_idefics3(tmp_path_factory.mktemp("tiny-idefics3"))


@pytest.fixture(scope="session")
def efficientnet() -> EfficientNetEmbedder:
    return EfficientNetEmbedder()


def blob_image(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A smooth random color field: distinct per seed, similar under small changes."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(3, 3, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.Resampling.BILINEAR)


@dataclass
class RecordingServer:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def vlm_server() -> Iterator[RecordingServer]:
    """Answers /v1/chat/completions with a summary of what it got: the number of images
    and the last user text, so tests can see the prompt a strategy built."""
    state = RecordingServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            parts = [
                p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]
            ]
            images = sum(p["type"] == "image_url" for p in parts)
            texts = [p["text"] for p in parts if p["type"] == "text"]
            reply = {
                "choices": [
                    {"message": {"content": f"{images} images; {texts[-1] if texts else ''}"}}
                ]
            }
            data = json.dumps(reply if state.status == 200 else {"error": "boom"}).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()


def photo_engine(
    store: Any,
    vision_model: Any,
    image_embedder: Any,
    *,
    allowed: list[Path],
    negative_pool: Sequence[Path] = (),
    text_image_embedder: Any = None,
    generation: Any = None,
) -> Any:
    """An engine whose vision side is these components (no text model: asking for one
    fails the test)."""
    from pgen.engine import Engine
    from pgen.usermodel.photo_memory import PhotoMemory

    def no_text_model() -> Any:
        raise AssertionError("these tests use no text model")

    def photos(kept: Any) -> PhotoMemory:
        return PhotoMemory(
            kept,
            lambda: image_embedder,
            allowed=allowed,
            negative_pool=negative_pool,
            text_image_embedder=(lambda: text_image_embedder) if text_image_embedder else None,
        )

    return Engine(
        store,
        no_text_model,
        no_text_model,
        vision_model=vision_model,
        photos=photos,
        generation=generation,
    )
