"""The loop closed over HTTP: outputs get thumbs and pairs, DPO trains on them as a job,
the dpo strategy then applies the user's adapter, and deleting the user removes it all."""

from __future__ import annotations

from tests.serve.server import Running
from tests.serve.test_api import poll


def test_feedback_trains_dpo_which_then_shapes_answers(server: Running) -> None:
    with server.client("acme") as client:
        first, second = (
            client.post("/users/alice/generate", json={"instruction": "describe my boots"}).json()
            for _ in range(2)
        )
        for output, thumbs in ((first, 1), (second, -1)):  # thumbs on two outputs: a pair
            body = {"output_id": output["output_id"], "thumbs": thumbs}
            assert client.post("/users/alice/feedback", json=body).status_code == 200
        for n in range(4):
            pair = {
                "prompt": f"review {n}",
                "chosen": "bright screen, long battery",
                "rejected": "meh",
            }
            assert client.post("/users/alice/feedback", json=pair).status_code == 200
        started = client.post("/users/alice/train", json={"method": "dpo"})
        assert started.status_code == 202
        job = poll(client, started.json()["job_id"], seconds=300)
        assert job["status"] == "succeeded", job
        answer = client.post(
            "/users/alice/generate", json={"instruction": "describe my boots", "strategy": "dpo"}
        ).json()
        assert not answer["provenance"]["model"].endswith("__base__")  # the adapter applied
        assert answer["provenance"]["artifacts"]
        exported = client.get("/users/alice/export").json()
        assert len(exported["feedback"]) >= 6
        assert client.delete("/users/alice").json()["counts"]["feedback"] >= 6
        assert client.get("/users/alice/export").status_code == 404
