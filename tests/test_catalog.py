"""Names resolve to the live catalog's opaque ids in any case; unknown names list valid ones."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.api.v1 import ApiClient
from pipeline.errors import CatalogError
from pipeline.ordering.catalog import Catalog
from pipeline.sandbox import Sandbox


@pytest.fixture
def catalog(sandbox: Sandbox) -> Catalog:
    async def fetch() -> Catalog:
        async with ApiClient(sandbox.url, sandbox.api_key) as client:
            return await Catalog.fetch(client)

    return asyncio.run(fetch())


@pytest.mark.parametrize("name", ["indoor", "INDOOR", "Indoor", " indoor ", "space-ie-indoor"])
def test_space_names_resolve_in_any_case(catalog: Catalog, name: str) -> None:
    assert catalog.resolve_space(name).name == "space-ie-indoor"


def test_space_resolves_by_its_opaque_id(catalog: Catalog) -> None:
    outdoor = catalog.resolve_space("outdoor")
    assert catalog.resolve_space(outdoor.id.upper()) == outdoor


def test_enhancement_titles_resolve_in_any_case_to_widget_and_item_ids(catalog: Catalog) -> None:
    options = catalog.resolve("indoor", ["add FIRE to fireplace", "Add Screen to TV"])
    widgets = catalog.widgets["space-ie-indoor"]
    items = {i.title: i.id for w in widgets for i in w.items}
    assert [s["item_id"] for s in options.selected_widgets] == [
        items["Add Fire to Fireplace"],
        items["Add Screen to TV"],
    ]
    assert {s["id"] for s in options.selected_widgets} == {widgets[0].id}
    assert options.enhancement_titles == ("add fire to fireplace", "add screen to tv")


def test_the_same_toggle_twice_is_sent_once(catalog: Catalog) -> None:
    options = catalog.resolve("indoor", ["Add Screen to TV", "add screen to tv"])
    assert len(options.selected_widgets) == 1


def test_unknown_space_lists_the_valid_ones(catalog: Catalog) -> None:
    with pytest.raises(CatalogError) as caught:
        catalog.resolve("attic", [], where="demo.yaml:7: ")
    message = str(caught.value)
    assert message.startswith("demo.yaml:7: ")
    assert "'attic'" in message and "indoor" in message and "outdoor" in message
    assert caught.value.exit_code == 2


def test_unknown_enhancement_lists_the_valid_ones(catalog: Catalog) -> None:
    with pytest.raises(CatalogError) as caught:
        catalog.resolve("outdoor", ["Add Screen to TV"], where_enh="demo.yaml:9: ")
    message = str(caught.value)
    assert message.startswith("demo.yaml:9: ")
    assert "'Add Screen to TV'" in message and "'Remove Extra Objects'" in message
