import pytest

from agentwheel.flywheels.reasoning.answer_format import extract_answer, last_boxed
from agentwheel.settings.answer_format import AnswerFormat


def test_last_boxed_balances_braces():
    text = "First \\boxed{1}, then finally \\boxed{\\frac{3}{4}} done"
    assert last_boxed(text) == "\\frac{3}{4}"
    assert last_boxed("\\boxed{unclosed") is None
    assert last_boxed("no box") is None


@pytest.mark.parametrize(
    ("name", "text", "answer"),
    [
        ("boxed", "So \\boxed{42}.", "42"),
        ("boxed", "So \\boxed{ $42$ }", "42"),
        ("hash", "step one\n#### 1,234", "1,234"),
        ("answer_tag", "work <answer> 7 </answer>", "7"),
    ],
)
def test_each_format_reads_its_wrapper(name, text, answer):
    extraction = extract_answer(AnswerFormat(name=name), text)
    assert extraction.answer == answer
    assert extraction.followed_format and extraction.method == "format"


def test_lenient_fallbacks_phrase_then_last_number():
    fmt = AnswerFormat()
    phrase = extract_answer(fmt, "We add 3 and 4, so the answer is 7. Done.")
    assert (phrase.answer, phrase.method, phrase.followed_format) == ("7", "phrase", False)
    number = extract_answer(fmt, "3 + 4 gives 7")
    assert (number.answer, number.method) == ("7", "last_number")
    assert extract_answer(fmt, "I cannot tell.").method == "none"


def test_strict_format_extracts_nothing_without_the_wrapper():
    assert extract_answer(AnswerFormat(lenient=False), "the answer is 7").answer is None


def test_prompt_appends_the_instruction():
    assert AnswerFormat().prompt("What is 2+2?").endswith("Put your final answer in \\boxed{}.")
    custom = AnswerFormat(name="hash", instruction="End with #### and the number.")
    assert custom.prompt("Q").endswith("End with #### and the number.")


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("first 9, then 12,", "12"),
        ("total 1,234 apples", "1,234"),
        ("it is 3/4", "3/4"),
        ("-7.5 degrees", "-7.5"),
    ],
)
def test_last_number_fallback_keeps_whole_numbers(text, answer):
    assert extract_answer(AnswerFormat(), text).answer == answer


@pytest.mark.parametrize(
    ("text", "answer", "method"),
    [
        ("so the answer is 2 + 5 = 7.", "7", "phrase"),
        ("The answer is yes.", "yes", "phrase"),
        ("9 - 4 gives 5. The answer is step by step reasoning.", "5", "last_number"),
        ("4 + 4 = 8, the answer is in \\boxed{}", "8", "last_number"),
        ("The answer is 12. Later: the answer is a mystery.", "12", "phrase"),
    ],
)
def test_answer_phrases_must_state_a_value(text, answer, method):
    extraction = extract_answer(AnswerFormat(), text)
    assert (extraction.answer, extraction.method) == (answer, method)
