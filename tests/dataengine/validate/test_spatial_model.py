"""The spatial trainer's pieces in closed form: RoPE, the KV cache, batching, the tokenizer, scores, facts."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("tokenizers")

from dataengine.validate.spatial import fact_agreement, score  # noqa: E402
from dataengine.validate.text import SPECIALS, Formatter, train_tokenizer  # noqa: E402
from dataengine.validate.vlm import VLM, VLMConfig, apply_rope, attention_mask, left_pad, load_model, rope_angles, save_model  # noqa: E402

TEXTS = [
    "How far apart are the red box and the blue sphere?",
    "The red box is located at [0.100,0.200,0.300,0.400], 4.20 meters in front of the camera. So the answer is 3.10 meters.",
    "Is there a green cylinder in the image?",
    "Which is closer to the camera, the white box or the gray sphere?",
    "3.10 meters",
    "the white box",
    "Yes",
]


@pytest.fixture(scope="module")
def formatter() -> Formatter:
    return Formatter(train_tokenizer(TEXTS * 4, vocab_size=300))


def test_rope_rotates_each_pair_by_position_times_frequency():
    x = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 1, 4)  # two pairs, frequencies 1 and 1/100 (theta 1e4, dim 4)
    cos, sin = rope_angles(torch.tensor([[3]]), 4, 10000.0)
    rotated = apply_rope(x, cos, sin).flatten()
    expected = torch.tensor([math.cos(3), math.sin(3), math.cos(0.03), math.sin(0.03)])
    assert torch.allclose(rotated, expected, atol=1e-6)


def test_rope_scores_depend_only_on_the_distance_between_positions():
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def dot(m: int, n: int) -> float:
        qm = apply_rope(q, *rope_angles(torch.tensor([[m]]), 16, 10000.0))
        kn = apply_rope(k, *rope_angles(torch.tensor([[n]]), 16, 10000.0))
        return float((qm * kn).sum())

    assert dot(7, 3) == pytest.approx(dot(17, 13), abs=1e-4)
    assert dot(7, 3) != pytest.approx(dot(7, 5), abs=1e-3)


def test_the_mask_hides_padding_and_the_future_but_never_a_token_from_itself():
    valid = torch.tensor([[False, True, True]])
    mask = attention_mask(valid, torch.zeros(1, 3, dtype=torch.long))[0, 0]
    assert mask.tolist() == [[True, False, False], [False, True, False], [False, True, True]]


@pytest.mark.parametrize(
    "vision,switches", [(None, {}), ("vit_tiny_patch16_224", {}), ("vit_tiny_patch16_224", {"mod": True, "layers": 3})]
)
def test_generation_with_the_cache_equals_generation_without_it_and_batching_changes_nothing(formatter, vision, switches):
    torch.manual_seed(0)
    config = VLMConfig(
        vocab_size=formatter.vocab_size,
        dim=32,
        layers=2,
        heads=2,
        hidden=64,
        vision=vision,
        vision_kwargs={"patch_size": 8, "depth": 1, "embed_dim": 48, "num_heads": 2},
        input_size=[16, 16],
        depth=vision is not None,
    )
    for name, value in switches.items():
        setattr(config, name, value)
    model = VLM(config).eval()
    prompts = [formatter.prompt(text, with_rationale=i % 2 == 0) for i, text in enumerate(TEXTS[:4])]
    assert len({len(p) for p in prompts}) > 1  # prompts of different lengths: left padding is exercised
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8) if vision else None
    depths = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8) if vision else None
    cached = model.generate(prompts, images, depths, 12, formatter.eos, use_cache=True)
    full = model.generate(prompts, images, depths, 12, formatter.eos, use_cache=False)
    alone = [
        model.generate([p], images[i : i + 1] if vision else None, depths[i : i + 1] if vision else None, 12, formatter.eos)[0]
        for i, p in enumerate(prompts)
    ]
    assert cached == full == alone
    assert any(cached)  # something was generated (an untrained model rarely says <eos> first)


def _small(formatter: Formatter, **switches) -> VLM:
    settings = {
        "vocab_size": formatter.vocab_size,
        "dim": 32,
        "layers": 4,
        "heads": 2,
        "hidden": 64,
        "vision": "vit_tiny_patch16_224",
        "vision_kwargs": {"patch_size": 8, "depth": 1, "embed_dim": 48, "num_heads": 2},
        "input_size": [16, 16],
        "depth": True,
    }
    return VLM(VLMConfig(**{**settings, **switches})).eval()


def test_target_loss_through_the_cache_equals_the_teacher_forced_loss_of_the_whole_sequence(formatter):
    torch.manual_seed(2)
    model = _small(formatter)
    prompts = [formatter.prompt(TEXTS[0], False), formatter.prompt(TEXTS[2], False)]
    targets = [formatter.target("3.10 meters", None), formatter.target("Yes", None)]
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    total, count = model.target_loss(prompts, targets, images, images)
    expected = 0.0
    for i, (prompt, target) in enumerate(zip(prompts, targets)):  # one at a time, no cache, no padding
        ids, valid = left_pad([prompt + target[:-1]], 0)
        with torch.no_grad():
            logits = model(ids, valid, model.visual_tokens(images[i : i + 1], images[i : i + 1]))[0, -len(target) :]
        expected += float(torch.nn.functional.cross_entropy(logits, torch.tensor(target), reduction="sum"))
    assert count == sum(len(t) for t in targets)
    assert total == pytest.approx(expected, rel=1e-4)


def test_minicache_in_generation_counts_what_it_stores_and_changes_little_of_a_mid_depth_cache(formatter):
    from dataengine.probes import stored_elements

    torch.manual_seed(3)
    model = _small(formatter)
    prompts = [formatter.prompt(TEXTS[0], False), formatter.prompt(TEXTS[3], False)]
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    stats: dict = {}
    model.generate(prompts, images, images, 4, formatter.eos, minicache=(0.6, 0.05), cache_stats=stats)
    n = model.visual_tokens(images, images).shape[1] + max(len(p) for p in prompts)
    heads, head_dim, layers = model.config.heads, model.config.dim // model.config.heads, model.config.layers
    retained_per_stream = math.floor(0.05 * n)  # per (batch row, head) stream: the top-gamma share of tokens by angle
    streams = 2 * heads  # rows x heads, each a K and a V cache
    per_stream = stored_elements(layers, n, head_dim, retained_per_stream)
    assert stats["dense"] == 2 * streams * layers * n * head_dim
    assert stats["stored"] == 2 * streams * per_stream
    assert stats["stored"] < stats["dense"]
    dense, _ = model.target_loss(prompts, [[5, 6], [7]], images, images)
    merged, _ = model.target_loss(prompts, [[5, 6], [7]], images, images, minicache=(0.6, 0.05))
    assert merged != dense and math.isfinite(merged)
    with pytest.raises(ValueError, match="does not combine with mod"):
        _small(formatter, mod=True).generate(prompts, images, images, 2, formatter.eos, minicache=(0.6, 0.05))


def test_critical_init_draws_the_projector_at_gelus_point_and_keeps_each_mlps_variance(formatter):
    from dataengine.probes import critical_parameters

    torch.manual_seed(4)
    model = _small(formatter, init="critical", dim=256, hidden=512)
    c_b, c_w, _ = critical_parameters("gelu")
    first = model.project[0]
    assert first.weight.var().item() == pytest.approx(c_w / first.in_features, rel=0.05)
    assert first.bias.var().item() == pytest.approx(c_b, rel=0.3)
    z = torch.randn(4096, 256)
    for block in model.blocks:
        gate, up = block.gate_up(z).chunk(2, dim=-1)
        out = block.down(torch.nn.functional.silu(gate) * up)
        assert out.var().item() == pytest.approx(1.0, rel=0.1)  # Cw_down = 1 / E[silu(g)^2] at the gate's kernel
    with pytest.raises(ValueError, match="'default' or 'critical'"):
        _small(formatter, init="orthogonal")


def test_a_checkpoint_round_trips_through_safetensors(tmp_path, formatter):
    torch.manual_seed(1)
    model = VLM(VLMConfig(vocab_size=formatter.vocab_size, dim=32, layers=1, heads=2, hidden=64, vision=None)).eval()
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    ids, valid = left_pad([[1, 5, 6, 7], [1, 8]], 0)
    assert torch.equal(model(ids, valid), loaded(ids, valid))


def test_the_tokenizer_round_trips_and_formats_qa_and_qra(formatter, tmp_path):
    assert [formatter.tokenizer.token_to_id(t) for t in SPECIALS] == list(range(len(SPECIALS)))
    for text in [*TEXTS, "unseen words: Zürich 12.5 m!"]:
        assert formatter.decode(formatter.encode(text)) == text
    formatter.tokenizer.save(str(tmp_path / "tokenizer.json"))
    from dataengine.validate.text import load_tokenizer

    assert load_tokenizer(tmp_path / "tokenizer.json").encode(TEXTS[1]).ids == formatter.encode(TEXTS[1])
    qa = formatter.target("3.10 meters", None)
    qra = formatter.target("3.10 meters", TEXTS[1])
    assert qa[-1] == qra[-1] == formatter.eos and formatter.answer not in qa
    assert formatter.split(qa[:-1], False) == (None, "3.10 meters")
    assert formatter.split(qra[:-1], True) == (TEXTS[1], "3.10 meters")
    assert formatter.split(formatter.encode("no answer marker"), True) == ("no answer marker", "")


def test_scores_follow_the_kind_and_the_benchmark():
    distance = {"kind": "distance", "answer": "4.00 meters"}
    assert score("4.90 meters", distance, "ssr_cot", 0.25) == 1.0
    assert score("5.10 meters", distance, "ssr_cot", 0.25) == 0.0
    order = {"kind": "depth_order", "answer": "the blue sphere"}
    assert score("Blue sphere.", order, "ssr_cot", 0.25) == 1.0
    assert score("the red box", order, "ssr_cot", 0.25) == 0.0
    okvqa = {"source": "okvqa", "answers": ["dog"] * 3 + ["cat"] * 7}
    assert score("dog", okvqa, "vqa", 0.25) == pytest.approx(0.9)  # the official leave-one-out average
    aokvqa = {"source": "aokvqa", "answers": ["two"] * 10}
    assert score("TWO", aokvqa, "vqa", 0.25) == 0.0  # A-OKVQA does not normalise
    infoseek = {
        "source": "infoseek",
        "answers": ["1900"],
        "answer_aliases": None,
        "answer_range": [1890, 1910],
        "question_type": "Numerical",
    }
    assert score("1905", infoseek, "vqa", 0.25) == 1.0


FACTS = {
    "objects": [
        {
            "name": "red box",
            "box": [0.1, 0.2, 0.3, 0.4],
            "width_m": 1.0,
            "height_m": 2.0,
            "nearest_m": 4.2,
            "center_m": [0, 0, 4],
            "points": 9,
        },
        {
            "name": "blue sphere",
            "box": [0.6, 0.2, 0.7, 0.3],
            "width_m": 1.0,
            "height_m": 1.0,
            "nearest_m": 8.0,
            "center_m": [2, 0, 8],
            "points": 9,
        },
    ],
    "relations": [{"a": "red box", "b": "blue sphere", "distance_m": 4.5, "left_of": True, "above": False, "nearer": True, "clock": 2}],
}


def test_rationale_facts_agree_with_the_record_they_describe_and_not_with_another():
    from builders.ssr.rationale import parse

    text = (
        "The red box is located at [0.100,0.200,0.300,0.400], 4.20 meters in front of the camera. "
        "Measured in 3D, the red box is 4.50 meters from the blue sphere. The blue sphere is to the right of the red box. "
        "From the red box, the blue sphere lies at about 2 o'clock. So the answer is 4.50 meters."
    )
    assert fact_agreement(parse(text), FACTS, 0.25) == (5, 5)  # box, depth, distance, side (inverted pair), clock
    wrong = text.replace("right of", "left of").replace("4.50 meters from", "9.00 meters from")
    assert fact_agreement(parse(wrong), FACTS, 0.25) == (3, 5)
    other = {"objects": [{**FACTS["objects"][0], "name": "green cylinder"}], "relations": []}
    assert fact_agreement(parse(text), other, 0.25) == (0, 5)
