"""The augment section of a recipe: YAML lists of transforms, strict keys, one-line errors."""

from __future__ import annotations

import pytest
import yaml

from pairsynth.augment import (
    AugmentConfig,
    Compose,
    Gain,
    HorizontalFlip,
    augment,
    augment_config_from_dict,
    list_transforms,
    load_augment_config,
    register_transform,
    transform_from_dict,
)
from pairsynth.augment import compose as compose_module
from pairsynth.augment.config import BUILTIN_SPECS
from pairsynth.augment.transforms import Transform
from pairsynth.errors import RecipeError

from tests.test_augment_transforms import CUSTOMISED, triplet


def test_yaml_list_builds_the_chain():
    data = yaml.safe_load("[{name: hflip, p: 0.5}, {name: gain, db: [-6, 6]}]")
    config = augment_config_from_dict(data)
    assert config.copies == 1
    assert config.build() == Compose([HorizontalFlip(p=0.5), Gain(db=(-6, 6))])


@pytest.mark.parametrize("name", sorted(BUILTIN_SPECS))
def test_spec_defaults_match_the_constructor_defaults(name):
    assert augment_config_from_dict([{"name": name}]).build().transforms[0] == transform_from_dict({"name": name})


def test_every_builtin_has_a_spec():
    assert sorted(BUILTIN_SPECS) == list_transforms()


@pytest.mark.parametrize("transform", CUSTOMISED, ids=lambda t: t.name)
def test_config_round_trip(transform):
    chain = Compose([transform])
    assert AugmentConfig.from_compose(chain, copies=3).build() == chain


def test_caption_rules_in_yaml():
    config = augment_config_from_dict(yaml.safe_load("""
transforms:
  - name: pitch_shift
    semitones: [5, 5]
    rules:
      - {invalidates: [low, high], when: {param: semitones, at_least: 3, absolute: true}}
  - name: hflip
    p: 1.0
    rules: [{swaps: {east: west, west: east}}]
"""))
    pitch, flip = config.build().transforms
    assert pitch.edit_caption("a low tone", {"semitones": -4.0}).invalidated == ("low",)
    assert flip.edit_caption("the east wing on the left", {}).after == "the west wing on the right"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"name": "hflip"}, {"name": "gain", "dbs": [1, 2]}], "augment: transforms[1].dbs: unknown key"),
        ([{"name": "mirror"}], "unknown transform 'mirror'; known: color_jitter, crop, gain, hflip"),
        ([{"name": "gain", "db": [6, -6]}], "transforms[0]: gain: db=[6.0, -6.0]; need low <= high"),
        ([{"name": "hflip", "p": 1.5}], "transforms[0].p: Input should be less than or equal to 1"),
        ([{"name": "crop", "on_cut": "keep"}], "transforms[0].on_cut: Input should be 'drop' or 'flag'"),
        ([{"name": "hflip", "rules": [{"swap": {"a": "b"}}]}], "transforms[0].rules[0].swap: unknown key"),
        ({"transforms": []}, "augment: transforms: List should have at least 1 item"),
        ({"transforms": [{"name": "hflip"}], "copies": 0}, "augment: copies: Input should be greater than or equal"),
    ],
)
def test_errors_name_the_item_and_field(data, message):
    with pytest.raises(RecipeError) as err:
        augment_config_from_dict(data)
    assert message in str(err.value)


def test_load_from_file_with_or_without_an_augment_key(tmp_path):
    path = tmp_path / "aug.yaml"
    path.write_text("augment:\n  copies: 2\n  transforms:\n    - {name: time_shift, shift_s: [-0.05, 0.05]}\n")
    config = load_augment_config(path)
    assert config.copies == 2 and config.build().transforms[0].shift_s == (-0.05, 0.05)
    path.write_text("- {name: vflip}\n")
    assert load_augment_config(path).build().transforms[0].name == "vflip"
    with pytest.raises(RecipeError, match="does not exist"):
        load_augment_config(tmp_path / "missing.yaml")
    path.write_text("just a string\n")
    with pytest.raises(RecipeError, match="list of transforms"):
        load_augment_config(path)


def test_registered_transform_in_a_recipe(monkeypatch):
    monkeypatch.setattr(compose_module, "_REGISTERED", {})

    @register_transform
    class Brighten(Transform):
        name = "brighten"

        def __init__(self, amount: float = 0.1, **common):
            super().__init__(**common)
            self.amount = float(amount)

        def get_params(self, rng, sample):
            return {}

        def apply_media(self, sample, params):
            return sample.replace(image=sample.image + self.amount)

        def settings(self):
            return {"amount": self.amount}

    config = augment_config_from_dict([{"name": "brighten", "amount": 0.25}])
    assert config.build().transforms[0].amount == 0.25
    sample = triplet()
    assert (augment(sample, config.build(), seed=0).sample.image > sample.image).all()
    with pytest.raises(RecipeError, match="brighten"):
        augment_config_from_dict([{"name": "brighten", "amout": 1}])
