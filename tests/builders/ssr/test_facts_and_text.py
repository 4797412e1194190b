"""Facts against closed forms, rationale text parsing back to the stored facts, the gate, the rewrite check."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from builders.ssr import rationale
from builders.ssr.facts import FactError, Region, measure
from builders.ssr.gate import contradiction
from builders.ssr.rewrite import RewriteConfig, lost_facts, rewrite
from dataengine.depth.geometry import Intrinsics

K = Intrinsics(500.0, 500.0, 319.5, 239.5)


def _two_boards():
    """A 1.0 x 1.5 m board 5 m away on the left, a 0.8 x 0.8 m board 8 m away on the right."""
    depth = np.zeros((480, 640), np.float32)
    depth[100:250, 100:200] = 5.0  # 100 px / 500 * 5 m = 1.0 m wide, 150 px -> 1.5 m tall
    depth[200:250, 400:450] = 8.0  # 50 px * 8 / 500 = 0.8 m
    return depth, [Region("tall board", (100, 100, 200, 250)), Region("small board", (400, 200, 450, 250))]


def test_measured_facts_match_closed_forms():
    depth, regions = _two_boards()
    m = measure(depth, K, regions)
    tall, small = m.objects
    # Pixel centres span (n - 1) pixels: the measured extent is (n - 1) * z / f.
    assert tall.width_m == pytest.approx(99 * 5 / 500) and tall.height_m == pytest.approx(149 * 5 / 500)
    assert small.width_m == pytest.approx(49 * 8 / 500) and tall.nearest_m == 5.0 and small.nearest_m == 8.0
    assert tall.box_norm == pytest.approx([100 / 640, 100 / 480, 200 / 640, 250 / 480])
    pair = m.pair("tall board", "small board")
    assert pair["left_of"] and pair["nearer"] and pair["above"] is True
    assert m.pair("small board", "tall board")["left_of"] is False
    # Distance: each board is a plane at its own depth; nearest points are > 3 m apart.
    assert pair["distance_m"] > 3.0


def test_box_outside_image_and_no_valid_depth_are_fact_errors():
    depth, regions = _two_boards()
    with pytest.raises(FactError) as outside:
        measure(depth, K, [Region("x", (600, 10, 700, 50))])
    assert outside.value.code == "box_outside_image"
    with pytest.raises(FactError) as empty:
        measure(depth, K, [Region("sky", (300, 300, 350, 350))])
    assert empty.value.code == "no_valid_depth"
    with pytest.raises(FactError) as masked:
        measure(depth, K, [Region("masked", (100, 100, 200, 250), np.zeros_like(depth, bool))])
    assert masked.value.code == "no_valid_depth"


@pytest.mark.parametrize("seed", range(6))
def test_rationale_facts_parse_back_to_the_stored_values(seed):
    depth, regions = _two_boards()
    m = measure(depth, K, regions)
    rng = np.random.default_rng(seed)
    names = ["tall board", "small board"]
    text = rationale.compose(
        ["The boards stand in a yard."],
        rationale.fact_sentences(m, names, [("tall board", "small board")], rng, vertical=True),
        "the tall board",
        rng,
    )
    facts = m.as_facts()
    parsed = rationale.parse(text)
    objects = {f["name"]: f for f in parsed if f["kind"] == "object"}
    for stored in facts["objects"]:
        said = objects[stored["name"]]
        assert said["box"] == stored["box"] and said["height"] == stored["height_m"] and said["width"] == stored["width_m"]
    relation = facts["relations"][0]
    by_kind = {f["kind"]: f for f in parsed}
    assert by_kind["distance"]["distance"] == relation["distance_m"]
    assert by_kind["side"]["side"] == ("left" if relation["left_of"] else "right")
    assert by_kind["depth_order"]["order"] == ("closer to" if relation["nearer"] else "farther from")
    assert by_kind["vertical"]["vertical"] == ("above" if relation["above"] else "below")
    assert by_kind["clock"]["clock"] == relation["clock"]
    assert rationale.stated_answer(text) == "the tall board" and text.endswith("the tall board.")


def test_gate_rejects_answers_that_contradict_the_facts():
    depth, regions = _two_boards()
    m = measure(depth, K, regions)
    assert contradiction({"fact": "side", "a": "tall board", "b": "small board", "value": "left"}, m, 0.02) is None
    assert "measured facts say right" in contradiction({"fact": "side", "a": "small board", "b": "tall board", "value": "left"}, m, 0.02)
    assert contradiction({"fact": "height", "name": "tall board", "value": 1.49}, m, 0.02) is None
    assert contradiction({"fact": "height", "name": "tall board", "value": 1.8}, m, 0.02) is not None
    assert contradiction({"fact": "depth_order", "a": "small board", "b": "tall board", "value": "closer"}, m, 0.02) is not None


class _ChatServer(BaseHTTPRequestHandler):
    mode = "faithful"
    seen_malformed = 0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _ChatServer.seen_auth = self.headers.get("Authorization")
        text = body["messages"][0]["content"].split("\n\n", 1)[1]
        if _ChatServer.mode == "faithful":
            out = text.replace("I find the", "We can see the")
        else:
            out = text.replace("meters apart", "meters apart, roughly 2 meters")
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": out}}]}).encode()
        if _ChatServer.mode == "malformed":
            payload = b'{"error": "rate limited"}' if _ChatServer.seen_malformed % 2 else b"<html>bad gateway</html>"
            _ChatServer.seen_malformed += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A local HTTP server with `handler` for the block; yields its OpenAI-style endpoint URL."""
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()


def test_rewrite_through_an_openai_compatible_endpoint_is_fact_checked(monkeypatch):
    with _serving(_ChatServer) as endpoint:
        monkeypatch.setenv("TEST_LLM_KEY", "sk-secret")
        config = RewriteConfig(endpoint=endpoint, model="tiny", api_key_env="TEST_LLM_KEY")
        original = (
            "I find the red box at [0.100,0.200,0.300,0.400]. The red box and the blue ball are 1.25 meters apart. So the answer is left."
        )
        _ChatServer.mode = "faithful"
        out = rewrite(original, config)
        assert out.startswith("We can see the red box") and lost_facts(original, out) is None
        assert _ChatServer.seen_auth == "Bearer sk-secret" and "sk-secret" not in json.dumps(config.record())
        _ChatServer.mode = "adds a number"
        assert "changed the numbers" in lost_facts(original, rewrite(original, config))
        assert "final answer" in lost_facts(original.replace("is left", "is yes"), original.replace("is left", "is no"))
        assert "relation words" in lost_facts(original + " It is left.", original + " It is right.")


def test_a_malformed_rewrite_reply_rejects_the_sample_not_the_partition(tmp_path):
    """Replies that are not JSON, or JSON without `choices`, are per-sample rejects; the build finishes."""
    import yaml

    from dataengine.api import build
    from dataengine.core.catalog import load_catalog

    _ChatServer.mode = "malformed"
    with _serving(_ChatServer) as endpoint:
        document = {
            "name": "rw",
            "version": "0",
            "builder": "ssr_cot_scenes",
            "seed": 3,
            "params": {
                "width": 160,
                "height": 120,
                "questions_per_scene": 1,
                "rewrite": {"endpoint": endpoint, "model": "tiny"},
            },
            "splits": {"train": {"num_samples": 4}},
        }
        (tmp_path / "rw.yaml").write_text(yaml.safe_dump(document))
        result = build(load_catalog(tmp_path / "rw.yaml"), tmp_path / "out", workers=0, progress=False)
    assert result.status == "built", result.failures
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert {r["code"] for r in rejects} == {"rewrite_failed"} and len(rejects) == 4
    assert any("the reply is not JSON" in r["reason"] for r in rejects) and any("KeyError" in r["reason"] for r in rejects)


class _RedirectingServer(BaseHTTPRequestHandler):
    """Answers every POST with a redirect to /elsewhere, and records the Authorization header /elsewhere gets."""

    reached_elsewhere: list[str | None] = []

    def do_POST(self):
        if self.path.startswith("/elsewhere"):
            _RedirectingServer.reached_elsewhere.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()
            return
        self.send_response(302)
        self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args):
        pass


def test_the_api_key_never_follows_a_redirect(monkeypatch):
    with _serving(_RedirectingServer) as endpoint:
        monkeypatch.setenv("TEST_LLM_KEY", "sk-secret")
        config = RewriteConfig(endpoint=endpoint, model="tiny", api_key_env="TEST_LLM_KEY")
        with pytest.raises(OSError, match="redirects \\(302\\).*set params.rewrite.endpoint to the final URL"):
            rewrite("So the answer is left.", config)
    assert _RedirectingServer.reached_elsewhere == []


def test_an_endpoint_with_a_password_is_refused_before_anything_is_written(tmp_path):
    import yaml

    from dataengine.api import build
    from dataengine.core.catalog import load_catalog
    from dataengine.run.build import BuildError

    document = {
        "name": "rw",
        "version": "0",
        "builder": "ssr_cot_scenes",
        "seed": 3,
        "params": {"width": 160, "height": 120, "rewrite": {"endpoint": "https://user:hunter2@llm.example.com/v1", "model": "tiny"}},
        "splits": {"train": {"num_samples": 4}},
    }
    (tmp_path / "rw.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(BuildError, match=r"holds a user or password \(user:pw@host\).*api_key_env"):
        build(load_catalog(tmp_path / "rw.yaml"), tmp_path / "out", workers=0, progress=False)
    assert not (tmp_path / "out").exists()
