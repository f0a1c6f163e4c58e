"""Caption rules: whole-word swaps that keep case, conditional rules and invalidated words."""

from __future__ import annotations

import pytest

from pairsynth.augment.caption_rules import (
    COLOUR_WORDS,
    HUE_CHANGE,
    LEFT_RIGHT,
    PITCH_DOWN,
    PITCH_UP,
    TOP_BOTTOM,
    CaptionRule,
    When,
    edit_caption,
    find_words,
    symmetric,
)


def flip(caption: str) -> str:
    return edit_caption(caption, [LEFT_RIGHT], {}).after


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("a red circle on the left", "a red circle on the right"),
        ("a high beeping tone on the right", "a high beeping tone on the left"),
        ("Left of the tree", "Right of the tree"),  # capitalised
        ("LEFT SIDE", "RIGHT SIDE"),  # upper case
        ("left and right", "right and left"),  # one pass: both swap, neither swaps back
        ("Left, RIGHT, left.", "Right, LEFT, right."),  # punctuation is a boundary
        ("(left)", "(right)"),
        ("the dog's left paw", "the dog's right paw"),
        ("the left-hand side", "the right-hand side"),  # hyphen separates words: decided, documented
        ("a left-handed writer", "a right-handed writer"),
        ("the top-left corner", "the top-right corner"),
        ("the leftmost cup", "the rightmost cup"),
        ("it turns clockwise", "it turns counterclockwise"),
        ("it turns counter-clockwise", "it turns clockwise"),  # longest alternative wins
        ("it turns anticlockwise", "it turns clockwise"),
    ],
)
def test_left_right_swap(caption, expected):
    assert flip(caption) == expected


@pytest.mark.parametrize(
    "caption",
    [
        "leftover pizza",  # a word containing "left"
        "a bright light",  # a word containing "right"
        "a lefty pitcher",
        "copyright notice",
        "left_side and right2",  # "_" and digits are word characters
        "a red circle in the middle",  # no spatial word at all
        "",
    ],
)
def test_words_containing_side_words_are_untouched(caption):
    edit = edit_caption(caption, [LEFT_RIGHT], {})
    assert edit.after == caption and not edit.changed and edit.swaps == ()


def test_edit_records_swaps_as_written():
    edit = edit_caption("Left or right", [LEFT_RIGHT], {})
    assert edit.swaps == (("Left", "Right"), ("right", "left"))


def test_flip_twice_restores_caption():
    caption = "The LEFT cup, the right-hand plate and the leftover Left bowl"
    assert flip(flip(caption)) == caption


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("a box on top of the bottom shelf", "a box on bottom of the top shelf"),
        ("the moon above the sea", "the moon below the sea"),
        ("the upper lip", "the lower lip"),
        ("Bottom row", "Top row"),
        ("stop the bottomless topping", "stop the bottomless topping"),
    ],
)
def test_top_bottom_swap(caption, expected):
    assert edit_caption(caption, [TOP_BOTTOM], {}).after == expected


def test_multi_word_key_matches_any_spacing_and_keeps_title_case():
    rule = CaptionRule(swaps={"top left": "bottom right"})
    assert edit_caption("the top   left corner", [rule], {}).after == "the bottom right corner"
    assert edit_caption("Top Left", [rule], {}).after == "Bottom Right"


def test_user_table_extends_the_builtin_one():
    compass = CaptionRule(swaps=symmetric({"east": "west"}))
    edit = edit_caption("the East wing, on the left", [LEFT_RIGHT, compass], {})
    assert edit.after == "the West wing, on the right"


def test_later_rule_wins_on_the_same_word():
    rules = [LEFT_RIGHT, CaptionRule(swaps={"left": "port"})]
    assert edit_caption("left and right", rules, {}).after == "port and left"


def test_conditional_pitch_rules_fire_only_past_an_octave():
    rules = [PITCH_UP, PITCH_DOWN]
    assert edit_caption("a low tone", rules, {"semitones": 11.9}).after == "a low tone"
    assert edit_caption("a low tone", rules, {"semitones": 12.0}).after == "a high tone"
    assert edit_caption("a High tone, higher", rules, {"semitones": -12.5}).after == "a Low tone, lower"
    assert edit_caption("a high tone", rules, {"semitones": 12.0}).after == "a high tone"  # up keeps high


def test_invalidated_words_are_found_as_written_when_the_rule_fires():
    assert edit_caption("a Red ball", [HUE_CHANGE], {"hue": -0.2}).invalidated == ("Red",)  # absolute: |-0.2|
    assert edit_caption("a Red ball", [HUE_CHANGE], {"hue": 0.01}).invalidated == ()
    assert edit_caption("a redder bored ball", [HUE_CHANGE], {"hue": 0.2}).invalidated == ()
    assert "red" in COLOUR_WORDS


def test_condition_on_a_param_the_transform_does_not_draw_raises():
    rule = CaptionRule(invalidates=("low",), when=When(param="semitone", at_least=1))
    with pytest.raises(ValueError, match=r"'semitone'.*\['semitones'\]"):
        edit_caption("a low tone", [rule], {"semitones": 3.0})


def test_rule_validation():
    with pytest.raises(ValueError, match="both swapped and invalidated"):
        CaptionRule(swaps={"red": "blue"}, invalidates=("Red",))
    with pytest.raises(ValueError, match="non-empty"):
        CaptionRule(swaps={" ": "x"})
    with pytest.raises(ValueError, match="at_least, at_most"):
        When(param="hue")
    with pytest.raises(ValueError, match="maps to both"):
        symmetric({"left": "right", "right": "up"})


def test_rule_dict_round_trip():
    rule = CaptionRule(swaps={"Low": "high"}, invalidates=("deep",),
                       when=When(param="semitones", at_least=12, absolute=True))
    again = CaptionRule.from_dict(rule.to_dict())
    assert again == rule and again.swaps == {"low": "high"}  # keys are normalised to lower case
    with pytest.raises(ValueError, match="unknown keys"):
        CaptionRule.from_dict({"swap": {"a": "b"}})


def test_find_words():
    assert find_words("Red, red and RED; redo", ["red"]) == ["Red", "red", "RED"]
    assert find_words("anything", []) == []
