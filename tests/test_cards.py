"""Cards are frozen, typed records; malformed cards fail with file, field, value, allowed values."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from heldout.cards.dataset import DatasetCard, list_dataset_cards, load_dataset_card
from heldout.errors import CardError

REPO = Path(__file__).resolve().parents[1]


def _card(tmp_path: Path, name: str = "my-card", **changes: object) -> Path:
    data = yaml.safe_load((REPO / "registry/datasets/glioma-tirosh2016.yaml").read_text())
    data["name"] = name
    for dotted, value in changes.items():
        target = data
        *parents, leaf = dotted.split("__")
        for p in parents:
            target = target[p]
        if value is None:
            target.pop(leaf)
        else:
            target[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_registered_cards_load_and_are_frozen() -> None:
    names = list_dataset_cards(REPO / "registry")
    assert len(names) >= 3
    card = load_dataset_card(names[0], REPO / "registry")
    with pytest.raises(pydantic.ValidationError):
        card.name = "other"  # type: ignore[misc]
    assert card.schema_version == 1


def test_bad_enum_names_file_field_value_allowed_and_suggestion(tmp_path: Path) -> None:
    path = _card(tmp_path, census__organism="homo_sapien")
    with pytest.raises(CardError) as info:
        load_dataset_card(path)
    text = str(info.value)
    assert str(path) in text and "census.organism" in text and "'homo_sapien'" in text
    assert "'homo_sapiens', 'mus_musculus'" in text and "Did you mean 'homo_sapiens'?" in text


def test_unknown_field_suggests_the_right_one(tmp_path: Path) -> None:
    path = _card(tmp_path, lables=["cell_type"])
    with pytest.raises(CardError, match=r"lables: unknown field.*Did you mean 'labels'\?"):
        load_dataset_card(path)


def test_alias_census_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CardError, match=r"census.version: String should match pattern.*'stable'"):
        load_dataset_card(_card(tmp_path, census__version="stable"))


def test_filter_must_parse(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="census.obs_value_filter: Value error, value filter does not parse"):
        load_dataset_card(_card(tmp_path, census__obs_value_filter="tissue == 'brain' and"))


@pytest.mark.parametrize(("changes", "message"), [
    ({"schema_version": 2}, r"schema_version: Input should be 1 \(got 2\)"),
    ({"labels": None}, "labels: required field is missing"),
    ({"split__fractions": {"train": 0.5, "test": 0.4}}, "fractions must include 'test' and sum to 1"),
    ({"split__stratify_by": "tissue"}, "stratify_by 'tissue' must be one of labels"),
    ({"primary_data": "primary"}, "Allowed: 'primary_only', 'all_cells'"),
])
def test_other_malformed_cards(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(CardError, match=message):
        load_dataset_card(_card(tmp_path, **changes))


def test_name_must_match_file(tmp_path: Path) -> None:
    path = _card(tmp_path, name="right-name")
    path.rename(tmp_path / "wrong-name.yaml")
    with pytest.raises(CardError, match="must match the file name 'wrong-name'"):
        load_dataset_card(tmp_path / "wrong-name.yaml")


def test_not_yaml_mapping(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("- a\n- b\n")
    with pytest.raises(CardError, match="must hold a YAML mapping"):
        load_dataset_card(tmp_path / "x.yaml")


def test_obs_filter_adds_primary_policy() -> None:
    card = load_dataset_card("glioma-tirosh2016", REPO / "registry")
    assert card.obs_filter.endswith("and is_primary_data == True")
    loose = DatasetCard.model_validate({**card.model_dump(mode="json"), "primary_data": "all_cells"})
    assert "is_primary_data" not in loose.obs_filter
