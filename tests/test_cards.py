"""Cards are frozen, typed records; malformed cards fail with file, field, value, allowed values."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heldout.cards._base import load_card
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


# ---- fuzzing: any YAML value in any field gives a CardError naming the file and the field ----------------------

YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def _leaf_paths(data: object, prefix: tuple = ()) -> list[tuple]:
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _leaf_paths(v, (*prefix, k))] + ([prefix] if prefix else [])
    return [prefix]


@pytest.mark.parametrize("kind", ["datasets", "models", "tasks"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_card_loaders_refuse_any_bad_value_with_a_card_error(kind: str, data: st.DataObject, tmp_path: Path) -> None:
    from heldout.cards.model import ModelCard
    from heldout.evaluation.tasks import TaskCard

    model = {"datasets": DatasetCard, "models": ModelCard, "tasks": TaskCard}[kind]
    source = sorted((REPO / "registry" / kind).glob("*.yaml"))[0]
    card = yaml.safe_load(source.read_text())
    path = data.draw(st.sampled_from(_leaf_paths(card)))
    value = data.draw(YAML_VALUES)
    target = card
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    file = tmp_path / source.name
    file.write_text(yaml.safe_dump(card, sort_keys=False))
    try:
        load_card(file, model)
    except CardError as exc:
        assert str(file) in str(exc)
        assert str(path[0]) in str(exc) or "name" in str(exc)
