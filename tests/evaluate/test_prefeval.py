"""``pgen bench prefeval`` on a tiny PrefEval-format folder with a tiny random model: it
runs end to end, scores deterministically, shuffles by seed, computes preference recall
right (a case where it must be 1 and one where it must be 0), and never leaks the gold."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pgen.bench.prefeval import (
    LETTERS,
    PrefEvalSettings,
    build,
    chat_tokens,
    check_settings,
    instruction,
    remember,
    run_prefeval,
    shuffled,
)
from pgen.bench.prefeval_data import Item, Said, conversation, load_filler, load_items
from pgen.bench.prefeval_report import report
from pgen.cli.main import main
from pgen.components import MESSAGE_TOKENS, chat
from pgen.config import Config
from pgen.engine import Engine
from pgen.personalize.frames import FRAMINGS

TOPICS = {
    "travel": [
        ("I avoid hotels with a bustling nightlife.", "Suggest hotels in Las Vegas for me."),
        ("I never eat seafood; I am allergic.", "What should I order at a restaurant in Lisbon?"),
    ],
    "pets": [
        ("I only adopt pets from shelters.", "Where can I find a Bengal cat?"),
        ("I am allergic to cat fur.", "Which pet would suit my small flat?"),
    ],
}
FILLER_TEXT = [
    ("How do I sort a list in Python?", "Use sorted(list) or list.sort()."),
    ("Explain the water cycle briefly.", "Water evaporates, condenses and falls as rain."),
    ("Write a haiku about autumn.", "Red leaves drift and fall, the wind hums a quiet song."),
    ("What is the capital of Peru?", "Lima is the capital of Peru."),
    ("Convert 10 miles to kilometres.", "10 miles is about 16.09 kilometres."),
    ("Give me a synonym for happy.", "Joyful is a synonym for happy."),
]


def write_prefeval(root: Path, filler: list[tuple[str, str]] = FILLER_TEXT) -> Path:
    """A PrefEval folder in the shared data's layout: mcq options (the first follows the
    preference), explicit and implicit forms, and filler chats of two turns each."""
    for topic, entries in TOPICS.items():
        mcq, explicit, choice, persona = [], [], [], []
        for n, (preference, question) in enumerate(entries):
            base = {"preference": preference, "question": question, "explanation": f"WHY-{n}"}
            options = [f"follows {topic} {n}", f"breaks one {n}", f"breaks two {n}", f"other {n}"]
            mcq.append({**base, "classification_task_options": options})
            explicit.append(base)
            choice.append(
                {
                    **base,
                    "implicit_query": "Any ideas?",
                    "options": options,
                    "aligned_op": options[0],
                    "conversation": {
                        "query": "Any ideas?",
                        "assistant_options": "1. a 2. b 3. c 4. d",
                        "user_selection": f"I pick the first: {preference}",
                        "assistant_acknowledgment": "Noted.",
                    },
                }
            )
            persona.append(
                {
                    **base,
                    "persona": "a teacher",
                    "conversation": {
                        "0": {"user": "Hello, I teach maths.", "assistant": "Hi!"},
                        "1": {"user": f"By the way, {preference}", "assistant": "Got it."},
                    },
                }
            )
        for folder, rows in (
            ("mcq_options", mcq),
            ("explicit_preference", explicit),
            ("implicit_preference/choice-based", choice),
            ("implicit_preference/persona-driven", persona),
        ):
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / f"{topic}.json").write_text(json.dumps(rows))
    chats = [
        {
            "conversation_id": str(c),
            "conversation": [
                m
                for ask, reply in filler[2 * c : 2 * c + 2]
                for m in ({"role": "user", "content": ask}, {"role": "assistant", "content": reply})
            ],
        }
        for c in range((len(filler) + 1) // 2)
    ]
    (root / "filtered_inter_turns.json").write_text(json.dumps(chats))
    return root


def _config(tmp_path: Path, model: Path, **extra: object) -> Config:
    return Config(home=tmp_path / "home", text_model=str(model), threads=1, **extra)  # type: ignore[arg-type]


def _stable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("model_s", "prepare_ms")} for r in rows]


def test_runs_end_to_end_and_scores_deterministically(tmp_path: Path, tiny_llama: Path) -> None:
    data = write_prefeval(tmp_path / "prefeval")
    settings = PrefEvalSettings(
        turns=(0, 2),
        limit=0,
        strategies=("none", "context", "reminder", "rag", "profile"),
        forms=("explicit", "choice", "persona"),
        modes=("letter", "option"),
        k=2,
    )
    config = _config(tmp_path, tiny_llama)
    rows = run_prefeval(config, data, settings)
    # 4 items: none once per mode, then 3 forms x 2 N x 4 settings x 2 modes.
    assert len(rows) == 4 * (2 + 3 * 2 * 4 * 2)
    for row in rows:
        assert row["chosen"] == LETTERS[max(range(4), key=lambda i: row["scores"][i])]
        assert row["correct"] == float(row["chosen"] == row["gold"])
        # The gold letter is where the preference-following option was shuffled to.
        assert row["options"][LETTERS.index(row["gold"])].startswith("follows")
        assert row["prompt_tokens"] > 0
    assert _stable(run_prefeval(config, data, settings)) == _stable(rows)


def test_options_are_shuffled_by_seed_and_the_same_in_every_setting() -> None:
    items = [Item("t", n, "p", "q", ("gold", "x", "y", "z"), {}) for n in range(24)]
    first = [shuffled(item, 0) for item in items]
    assert first == [shuffled(item, 0) for item in items]  # seeded: the same every call
    assert first != [shuffled(item, 1) for item in items]  # another seed, other orders
    assert all(options[gold] == "gold" for options, gold in first)
    assert len({gold for _, gold in first}) == 4  # the gold is not always at one letter


def _item(tmp_path: Path, filler: list[tuple[str, str]]) -> tuple[Item, Path]:
    data = write_prefeval(tmp_path / "prefeval", filler)
    return load_items(data, ("explicit",), "travel")[0], data


def _remembered(tmp_path: Path, model: Path) -> tuple[Item, Engine, list[Said], set[str]]:
    """One explicit item, its conversation (no filler) remembered as user u0's."""
    item, data = _item(tmp_path, FILLER_TEXT)
    engine = Engine.open(_config(tmp_path, model, prompt_tokens=2048))
    said = conversation(item, "explicit", load_filler(data), 0)
    return item, engine, said, remember(engine, "u0", said)


def test_preference_recall_is_one_when_the_stating_turn_is_in_the_prompt(
    tmp_path: Path, tiny_llama: Path
) -> None:
    item, engine, said, stating = _remembered(tmp_path, tiny_llama)
    text = instruction(item.question, list(item.options), "letter", False)
    for setting in ("context", "reminder", "rag"):
        prompt, facts = build(engine, setting, text, item, said, "u0", stating, 4)
        assert facts["recalled"] == 1.0, setting
        assert any(item.preference in m.content for m in prompt), setting
    engine.close()


def test_a_choice_reaches_the_prompt_as_a_record_when_retrieval_misses_its_turn(
    tmp_path: Path, tiny_llama: Path
) -> None:
    """A choice ("option 2") states nothing a sentence rule keeps; kept as a choice record
    (the offer and the pick), it is in the prompt however the turns rank."""
    item, data = _item(tmp_path, FILLER_TEXT)
    shown = (
        Said("user", "Where should I stay?", 0),
        Said("assistant", "1. Casino.\n2. Inn.", 0),  # short: the tiny model's budget
        Said("user", "Option 2.", 0, True),
        Said("assistant", "Noted.", 0),
    )
    engine = Engine.open(_config(tmp_path, tiny_llama, prompt_tokens=2048))
    said = [*shown, *(m for pair in load_filler(data)[:3] for m in pair)]
    stating = remember(engine, "u0", said)
    (record,) = engine.preferences("u0")
    assert record.origin == "choice" and record.text.startswith('Chose "Inn."')
    text = instruction(item.question, list(item.options), "letter", False)
    prompt, facts = build(engine, "rag", text, item, said, "u0", stating, 1, retriever="bm25")
    assert facts["recalled_turn"] == 0.0  # one turn retrieved, and not the pick
    assert facts["preference_in_prompt"] == 1.0
    assert 'Chose "Inn." over 1 other option offered' in prompt[0].content
    engine.close()


def test_rag_answers_a_prefeval_question_as_the_assistant_unless_told(
    tmp_path: Path, tiny_llama: Path
) -> None:
    item, engine, said, stating = _remembered(tmp_path, tiny_llama)
    # The stated preference was found in the user's turn; in the tiny model's short context
    # its block leaves no room for a turn (then rag has nothing to frame), so it goes here.
    (found,) = engine.preferences("u0")
    assert found.text in item.preference
    engine.remove_preference("u0", found.preference_id)
    # The question alone (option mode): the tiny model's short context leaves room for it.
    text = instruction(item.question, list(item.options), "option", False)
    for frame, expected in (("auto", "assistant"), ("author", "author")):
        prompt, _ = build(engine, "rag", text, item, said, "u0", stating, 4, frame=frame)
        assert prompt[0].content.startswith(FRAMINGS[expected].opening), frame
    with pytest.raises(ValueError, match="--frame: unknown poet"):
        check_settings(PrefEvalSettings(frame="poet"))
    engine.close()


def test_preference_recall_is_zero_when_the_stating_turn_is_left_out(
    tmp_path: Path, tiny_llama: Path
) -> None:
    # A filler turn that repeats the question outranks the preference for k = 1, and a
    # budget that holds only the last turns cuts the preference from the long context.
    question = TOPICS["travel"][0][1]
    item, data = _item(tmp_path, [(question, "Here are some hotels in Las Vegas."), *FILLER_TEXT])
    engine = Engine.open(_config(tmp_path, tiny_llama, prompt_tokens=2048))
    said = conversation(item, "explicit", load_filler(data), 4)
    stating = remember(engine, "u1", said)
    text = instruction(item.question, list(item.options), "letter", False)
    prompt, facts = build(engine, "rag", text, item, said, "u1", stating, 1)
    # Retrieval missed the turn; the preference found in it is in the prompt all the same.
    assert facts["recalled_turn"] == 0.0 and facts["turns_in_prompt"] == 1
    assert facts["preference_in_prompt"] == 1.0 and facts["recalled"] == 1.0
    (found,) = engine.preferences("u1")
    assert found.text in " ".join(m.content for m in prompt)
    engine.remove_preference("u1", found.preference_id)  # the user took it back
    prompt, facts = build(engine, "rag", text, item, said, "u1", stating, 1)
    assert facts["recalled"] == 0.0 and facts["preference_in_prompt"] == 0.0
    assert item.preference not in " ".join(m.content for m in prompt)
    # Room for the question and the last filler message only.
    last = engine.text_model.count_tokens(said[-1].text) + MESSAGE_TOKENS
    engine.prompt_tokens = chat_tokens(engine, chat(text)) + last
    prompt, facts = build(engine, "context", text, item, said, "u1", stating, 1)
    assert facts["recalled"] == 0.0 and facts["turns_in_prompt"] == 1
    assert item.preference not in " ".join(m.content for m in prompt)
    engine.close()


def test_no_gold_leaks_into_any_prompt(tmp_path: Path, tiny_llama: Path) -> None:
    item, data = _item(tmp_path, FILLER_TEXT)
    engine = Engine.open(_config(tmp_path, tiny_llama, prompt_tokens=2048))
    said = conversation(item, "explicit", load_filler(data), 2)
    stating = remember(engine, "u2", said)
    options, gold = shuffled(item, 0)
    for mode in ("letter", "option"):
        for setting in ("none", "context", "reminder", "rag"):
            text = instruction(item.question, options, mode, setting == "reminder")
            prompt, _ = build(engine, setting, text, item, said, "u2", stating, 4)
            seen = "\n".join(m.content for m in prompt)
            assert "WHY-" not in seen  # PrefEval's explanation says what is right
            if setting == "none":
                assert item.preference not in seen
            if mode == "option":  # the answers are the choices scored, never shown
                assert not any(option in seen for option in options)
            else:  # all four, in the shuffled order, under their letters
                for letter, option in zip(LETTERS, options, strict=True):
                    assert f"{letter}. {option}" in seen
    engine.close()
    assert options[gold] == item.options[0]


def test_bench_prefeval_writes_examples_and_a_report(tmp_path: Path, tiny_llama: Path) -> None:
    data = write_prefeval(tmp_path / "prefeval")
    out = tmp_path / "run"
    argv = ["--home", str(tmp_path / "home"), "--text-model", str(tiny_llama), "--threads", "1"]
    argv += ["bench", "prefeval", "--data", str(data), "--turns", "0,3", "--limit", "1"]
    argv += ["--strategy", "none,context,rag", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * (1 + 2 * 2)  # 2 topics x 1 item: none, then 2 N x 2 settings
    assert {r["setting"] for r in rows if "recalled" in r} == {"context", "rag"}
    report = (out / "report.md").read_text()
    assert "letter mode" in report and "Preference recall" in report and "N=3" in report
    assert json.loads((out / "run.json").read_text())["task"] == "prefeval"


def test_a_file_that_does_not_match_is_refused_naming_it(tmp_path: Path) -> None:
    data = write_prefeval(tmp_path / "prefeval")
    path = data / "implicit_preference/choice-based/travel.json"
    rows = json.loads(path.read_text())
    rows[1]["question"] = "something else"
    path.write_text(json.dumps(rows))
    with pytest.raises(ValueError, match=r"choice-based/travel.json: entry 1: question"):
        load_items(data, ("explicit", "choice"), "travel")
    with pytest.raises(ValueError, match="filler turns asked"):
        item = load_items(data, ("explicit",), "travel")[0]
        conversation(item, "explicit", load_filler(data), 99)
    assert replace(PrefEvalSettings(), limit=1).limit == 1
    assert Said("user", "x", 0).states is False


def test_recall_only_scores_nothing_and_reports_recall(tmp_path: Path, tiny_llama: Path) -> None:
    data = write_prefeval(tmp_path / "prefeval")
    settings = PrefEvalSettings(
        turns=(0,), limit=1, strategies=("context", "rag"), forms=("explicit",), score=False
    )
    rows = run_prefeval(_config(tmp_path, tiny_llama, prompt_tokens=2048), data, settings)
    assert len(rows) == 2 * 2  # 2 topics x 1 item x 2 settings
    # N = 0: the preference is the whole conversation, so every prompt holds it.
    assert all(r["recalled"] == 1.0 and "correct" not in r for r in rows)
    text = report(rows, "recall")
    assert "recall only" in text and "| explicit | rag | 1.00" in text
