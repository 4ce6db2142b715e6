"""v3 as the vendor's own client knows it (issue 27): every tool of its catalog, with labels.

The facts below are the vendor's client's (``AIHomeDesign/aihomedesign-mcp`` at 4b22a93,
``app/catalog.py`` and ``app/server.py``), written down by hand: the suite never runs its code.
One manifest with a folder per tool aihd can order is planned, run, exported and reviewed once
against a local emulator; each tool's own tests then read what a user saw.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from pipeline.api import tools
from pipeline.api.tools import alters, describe, label
from pipeline.api.v3_slugs import build_spec, identity_parts
from pipeline.ledger import PhotoOptions, PhotoRow, State
from pipeline.sandbox import Sandbox, SandboxConfig, SandboxThread, V3Readings
from pipeline.sandbox import v3_catalog as served
from tests.cli_helpers import FAST, aihd, ledger_rows, write_manifest

# The vendor's catalog lists these 15 tools; it reports the last two "tool not found" live.
VENDOR_TOOLS = (
    "tool-virtual-staging",
    "tool-virtual-restaging",
    "tool-interior-design",
    "tool-image-enhancement",
    "tool-item-removal",
    "tool-item-removal-mask",
    "tool-darkness",
    "tool-wall-change",
    "tool-floor-change",
    "tool-ceiling-change",
    "tool-backsplash-change",
    "tool-under-construction",
    "tool-day-to-dusk",
    "tool-furniture-set-restyle",
    "tool-sky-change",
)
NOT_FOUND_LIVE = ("tool-furniture-set-restyle", "tool-sky-change")
SKY = "widget-sky-style-tool-day-to-dusk"
# An item slug holds "-widget-", a widget slug "-tool-"; a tool slug starts a word.
SLUG = re.compile(
    r"item-[a-z0-9-]+-widget-|widget-[a-z0-9-]+-tool-|(?<![A-Za-z0-9_/-])tool-[a-z0-9]"
)


@dataclass(frozen=True, slots=True)
class Case:
    """One tool as a manifest folder orders it, and what a user should read about it."""

    tool: str  # its short name
    space: str  # the folder's space: key (read by image enhancement only)
    enhancements: list[str]
    keys: dict[str, str]  # more keys of the folder's entry, written as a user might
    label: str
    space_label: str
    options: tuple[str, ...]


# Each tool aihd can order, its options written as a value, a label or a full slug.
CASES = (
    Case("image-enhancement", "Outdoor", ["add screen to tv", "Add Fire to Fireplace"],
         {"tool": "Image Enhancement"}, "Image Enhancement", "Outdoor",
         ("Add Fire to Fireplace", "Add Screen to TV")),
    Case("day-to-dusk", "indoor", ["Shadow Removal"], {"tool": "day to dusk", "sky": "golden-hour"},
         "Day to Dusk", "", ("Sky: Golden Hour", "Shadow Removal")),
    Case("item-removal", "indoor", [], {"tool": "tool-item-removal"}, "Item Removal", "", ()),
    Case("virtual-staging", "indoor", [],
         {"tool": "virtual-staging", "room": "Living Room",
          "style": "item-modern-widget-style-tool-virtual-staging"},
         "Virtual Staging", "Living Room", ("Style: Modern",)),
    Case("virtual-restaging", "indoor", [],
         {"tool": "Virtual Restaging", "room": "bedroom", "style": "Farmhouse"},
         "Virtual Restaging", "Bedroom", ("Style: Farmhouse",)),
    Case("interior-design", "indoor", [],
         {"tool": "interior-design", "room": "kitchen", "style": "industrial",
          "color": "Warm Tones"},
         "Interior Design", "Kitchen", ("Style: Industrial", "Colours: Warm Tones")),
    Case("furniture-restyle", "indoor", [],
         {"tool": "furniture restyle", "room": "nursery", "style": "hampton"},
         "Furniture Restyle", "Nursery", ("Style: Hampton",)),
    Case("under-construction", "indoor", [],
         {"tool": "under-construction", "room": "home-office", "style": "contemporary"},
         "Under Construction", "Home Office", ("Style: Contemporary",)),
    Case("wall-change", "indoor", [],
         {"tool": "wall-change", "room": "bedroom", "material": "Brick Wall"},
         "Wall Change", "Bedroom", ("Material: Brick Wall",)),
    # The room left out: the vendor's client leaves it out too, and the API picks one.
    Case("floor-change", "indoor", [], {"tool": "floor-change", "material": "hardwood"},
         "Floor Change", "", ("Material: Hardwood",)),
    Case("ceiling-change", "indoor", [],
         {"tool": "Ceiling Change", "room": "kitchen", "material": "coffered"},
         "Ceiling Change", "Kitchen", ("Material: Coffered",)),
    Case("backsplash-change", "indoor", [],
         {"tool": "backsplash-change", "room": "bathroom", "material": "subway tile"},
         "Backsplash Change", "Bathroom", ("Material: Subway Tile",)),
)  # fmt: skip
PHOTOS_PER_TOOL = 2


@dataclass(frozen=True, slots=True)
class Night:
    """What a user saw of one manifest with a folder per tool: plan, run, export, review."""

    sandbox: Sandbox
    manifest: Path
    plan_text: str
    plan: dict[str, Any]
    run: dict[str, Any]
    again: dict[str, Any]
    rows: list[PhotoRow]
    export_csv: str
    export_rows: list[dict[str, Any]]
    review: dict[str, Any]
    review_text: str
    disclosure: str  # the delivery's disclosure.csv, every photo approved

    def folder_rows(self, case: Case) -> list[PhotoRow]:
        return [r for r in self.rows if r.folder == f"listing/{case.tool}"]


def _photo(folder: Path, name: str, shade: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (64, 48), (90, 90, 140))
    for x in range(16):  # a code row keeps each photo's bytes distinct
        image.putpixel((x, 0), (255, 255, 255) if (shade >> x) & 1 else (0, 0, 0))
    image.save(folder / name, "JPEG")


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Night]:
    """One night of every tool, made once: the module's tests run on one worker, one after
    another (conftest.py's SHARED_FIXTURE_MODULES)."""
    root = tmp_path_factory.mktemp("tools")
    for n, case in enumerate(CASES):
        for k in range(PHOTOS_PER_TOOL):
            _photo(root / "listing" / case.tool, f"p{k}.jpg", n * PHOTOS_PER_TOOL + k)
    manifest = write_manifest(
        root,
        {f"listing/{c.tool}": (c.space, c.enhancements) for c in CASES},
        api="v3",
        folder_keys={f"listing/{c.tool}": c.keys for c in CASES},
    )
    with manifest.open("a") as more:  # the photos are small: a profile that delivers them
        more.write("delivery_profiles:\n  small: {min_width: 16, min_height: 16}\n")
    config = SandboxConfig(
        api_key=secrets.token_urlsafe(24),
        orders_per_window=1000,
        window_seconds=600,
        time_scale=0.01,
    )
    with SandboxThread(config) as sandbox:
        plan_text = aihd(["plan", str(manifest)], sandbox)
        plan = aihd(["plan", str(manifest), "--json"], sandbox)
        assert plan.returncode == 0, plan.stderr
        run = aihd(["run", str(manifest), *FAST, "--json", "--collect"], sandbox, timeout=240)
        assert run.returncode == 0, run.stderr
        again = aihd(["run", str(manifest), *FAST, "--json"], sandbox)
        csv = aihd(["export", str(manifest)], sandbox)
        jsonl = aihd(["export", str(manifest), "--format", "jsonl"], sandbox)
        page = root / "review"
        review = aihd(["review", str(manifest), "-o", str(page)], sandbox)
        assert review.returncode == 0, review.stderr
        data_js = (page / "data.js").read_text(encoding="utf-8")
        originals = sorted(str(p) for p in (root / "listing").rglob("*.jpg"))
        approved = aihd(["approve", str(manifest), *originals], sandbox)
        assert approved.returncode == 0, approved.stderr
        delivered = aihd(["deliver", str(manifest), "--profile", "small"], sandbox)
        assert delivered.returncode == 0, delivered.stderr
        yield Night(
            sandbox=sandbox,
            manifest=manifest,
            plan_text=plan_text.stdout,
            plan=json.loads(plan.stdout),
            run=json.loads(run.stdout),
            again=json.loads(again.stdout),
            rows=ledger_rows(manifest),
            export_csv=csv.stdout,
            export_rows=[json.loads(line) for line in jsonl.stdout.splitlines()],
            review=json.loads(data_js.removeprefix("window.AIHD_REVIEW = ").rstrip(";\n")),
            review_text=data_js + (page / "index.html").read_text(encoding="utf-8"),
            disclosure=(root / "delivery" / "listing" / "disclosure.csv").read_text("utf-8"),
        )


def _process(sandbox: Sandbox, process_id: str) -> dict[str, Any]:
    """The emulator's record of a process (GET /v3/process/{id})."""

    async def get() -> dict[str, Any]:
        async with (
            aiohttp.ClientSession(headers={"x-api-key": sandbox.api_key}) as session,
            session.get(f"{sandbox.url}/v3/process/{process_id}") as answer,
        ):
            body: dict[str, Any] = (await answer.json())["data"]
            return body

    return asyncio.run(get())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.tool)
def test_each_tool_s_folder_is_planned_with_its_label(night: Night, case: Case) -> None:
    """`aihd plan` lists each folder's tool and options in words, and its two orders."""
    (folder,) = [f for f in night.plan["folders"] if f["folder"] == f"listing/{case.tool}"]
    assert folder["tool"] == case.label
    assert folder["options"] == [o for o in (case.space_label, *case.options) if o]
    assert (folder["new"], folder["orders"]) == (PHOTOS_PER_TOOL, PHOTOS_PER_TOOL)
    line = f"  listing/{case.tool}: {'; '.join([case.label, *folder['options']])}"
    assert line in night.plan_text.splitlines()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.tool)
def test_each_tool_is_ordered_and_charged_once_per_photo(night: Night, case: Case) -> None:
    """Each photo: one order, one process of its tool (the emulator checked its widgets),
    one charge, its result collected; the second run spends nothing."""
    rows = night.folder_rows(case)
    assert len(rows) == PHOTOS_PER_TOOL
    charges = night.sandbox.stats().charges
    for row in rows:
        assert row.service == f"v3:tool-{case.tool}" and row.state is State.COMPLETED
        assert charges[row.sha256] == 1
        assert _process(night.sandbox, str(row.image_id))["tool"] == f"tool-{case.tool}"
        assert Path(row.output_paths[0]).is_file()
    assert night.run["orders_spent"] == len(CASES) * PHOTOS_PER_TOOL
    assert night.again["orders_spent"] == 0
    assert sum(charges.values()) == len(CASES) * PHOTOS_PER_TOOL


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.tool)
def test_each_tool_shows_its_labels_in_export_and_the_review_page(night: Night, case: Case) -> None:
    """export (JSON lines) and the review page's data say the tool, space and options in words."""
    exported = [r for r in night.export_rows if r["folder"] == f"listing/{case.tool}"]
    reviewed = [p for p in night.review["photos"] if p["folder"] == f"listing/{case.tool}"]
    (folder,) = [f for f in night.review["folders"] if f["name"] == f"listing/{case.tool}"]
    assert len(exported) == len(reviewed) == PHOTOS_PER_TOOL
    for shown in [*exported, *reviewed, folder]:
        assert (shown["tool"], shown["space"]) == (case.label, case.space_label)
        assert tuple(shown["enhancements"]) == case.options


def test_no_internal_slug_reaches_a_user(night: Night) -> None:
    """Plan (text and JSON), export (CSV and JSON lines), the review page and the delivery's
    disclosure name no tool-/widget-/item- slug: every tool and option by its label."""
    shown = {
        "plan": night.plan_text + json.dumps(night.plan),
        "export": night.export_csv + json.dumps(night.export_rows),
        "review": night.review_text,
        "disclosure": night.disclosure,
    }
    assert SLUG.search("v3:tool-day-to-dusk") and SLUG.search(f"x,item-golden-hour-{SKY}")
    for where, text in shown.items():
        assert not SLUG.findall(text), (where, SLUG.findall(text)[:5])
    assert "Day to Dusk" in shown["export"] and "Sky: Golden Hour" in shown["review"]
    assert "AI HomeDesign Day to Dusk" in shown["disclosure"]
    assert (
        "What AI changed: Day to Dusk (daylight turned to dusk); Sky: Golden Hour"
        in (shown["disclosure"])
    )


def test_every_tool_of_the_vendor_catalog_is_known_with_a_label() -> None:
    """The 15 tools of the vendor's catalog are in aihd's table, each with a human label (no
    slug) and a disclosure class; the two it reports missing are marked so."""
    for slug in VENDOR_TOOLS:
        tool = tools.TOOLS[slug]
        assert label(slug) == tool.label and not SLUG.search(tool.label)
        assert bool(tool.missing) == (slug in NOT_FOUND_LIVE)
        for widget in tool.widgets:
            assert widget.slug.startswith("widget-") and widget.slug.endswith(f"-{slug}")
            assert all(not SLUG.search(item.label) for item in widget.items)
    assert set(VENDOR_TOOLS) < set(tools.TOOLS)
    # The docs' and web app's slug of furniture restyle is known beside the client's.
    assert label("tool-furniture-restyle") == label("tool-furniture-set-restyle")


def test_day_to_dusk_s_sky_widget_is_the_vendors() -> None:
    """widget-sky-style-tool-day-to-dusk: single, required in the catalog (left out by the
    vendor's client, so the API picks one), items dusk-with-cloud, clear-dusk, golden-hour."""
    dusk = tools.TOOLS["tool-day-to-dusk"]
    sky = dusk.widget("sky")
    assert sky is not None and sky.slug == SKY
    assert (sky.multi, sky.required, sky.api_default) == (False, True, True)
    assert [sky.item_slug(i) for i in sky.items] == [
        f"item-dusk-with-cloud-{SKY}",
        f"item-clear-dusk-{SKY}",
        f"item-golden-hour-{SKY}",
    ]
    for written in ("golden-hour", "Golden Hour", f"item-golden-hour-{SKY}", " GOLDEN hour "):
        spec = build_spec("day-to-dusk", sky=written)
        assert spec.widgets == ((SKY, (f"item-golden-hour-{SKY}",)),)


@pytest.mark.parametrize(
    ("name", "altering"),
    [
        # exempt edits: exposure, colour, sharpness; a brightness match
        ("tool-image-enhancement", False),
        ("service-image-enhancement", False),
        ("item-indoor-widget-area-tool-image-enhancement", False),
        ("tool-darkness", False),
        ("straightening", False),  # and aihd's own delivery edits
        ("Crop", False),
        ("resize", False),
        ("Padded to 4:3 with Plain Bars", False),
        # alterations: added fire or TV picture, removed objects, dusk, sky, staging, materials
        ("Add Fire to Fireplace", True),
        ("add screen to tv", True),
        ("Remove Extra Objects", True),
        ("item-add-fire-to-fireplace-widget-enhancement-options-tool-image-enhancement", True),
        ("v3:tool-day-to-dusk", True),
        ("tool-sky-change", True),
        ("tool-virtual-staging", True),
        ("tool-item-removal", True),
        ("tool-item-removal-mask", True),
        ("tool-floor-change", True),
        ("item-shadow-removal-widget-day-to-dusk-options-tool-day-to-dusk", True),
        # v1's other services are their v3 tools
        ("service-day-to-dusk", True),
        ("service-ai-virtual-staging", True),
        ("service-item-removal", True),
        # unknown: counted as an alteration
        ("service-creative-designer", True),
        ("tool-magic-eraser", True),
        ("Add Unicorn", True),
    ],
)
def test_what_alters_the_photo_and_what_is_an_exempt_edit(name: str, altering: bool) -> None:
    assert alters(name) is altering


def test_labels_are_found_from_a_slug_a_service_a_short_value_or_a_v1_title() -> None:
    assert {label(n) for n in ("tool-day-to-dusk", "v3:tool-day-to-dusk", "Day to dusk")} == {
        "Day to Dusk"
    }
    assert label("add fire to fireplace") == "Add Fire to Fireplace"  # a v1 ledger's title
    assert label(f"item-clear-dusk-{SKY}") == label("clear-dusk") == "Clear Dusk"
    assert label("service-image-enhancement") == "Image Enhancement"
    # Unknown slugs are made readable, never shown as they are; other text is kept.
    assert label("item-blue-moon-widget-sky-style-tool-day-to-dusk") == "Blue Moon"
    assert label("tool-magic-eraser") == "Magic Eraser"
    assert label("White Balance") == "White Balance"
    assert tools.v3_item_of_v1("Add Screen to TV") == (
        "item-add-screen-to-tv-widget-enhancement-options-tool-image-enhancement"
    )
    assert tools.v3_item_of_v1("Remove Extra Objects") is None


def test_a_ledger_row_is_described_in_words() -> None:
    dusk = build_spec("day-to-dusk", sky="clear dusk", enhancements=["lawn touch up"])
    words = describe(dusk.service, *identity_parts(dusk))
    assert (words.tool, words.space, words.options, words.alters) == (
        "Day to Dusk",
        "",
        ("Sky: Clear Dusk", "Lawn Touch-Up"),
        True,
    )
    plain = describe(
        "v3:tool-image-enhancement",
        "indoor",
        ["item-indoor-widget-area-tool-image-enhancement"],
    )
    assert (plain.tool, plain.space, plain.options, plain.alters) == (
        "Image Enhancement",
        "Indoor",
        (),
        False,
    )
    v1 = describe("service-image-enhancement", "space-ie-indoor", ["add fire to fireplace"])
    assert (v1.tool, v1.options, v1.alters) == (
        "Image Enhancement",
        ("Add Fire to Fireplace",),
        True,
    )


def test_a_disclosure_names_each_alteration_and_each_exempt_edit_in_words() -> None:
    """What review, export and deliver say of a photo: the table's words, the tool's own
    change first; a toggle or tool the table does not know is named as an alteration."""
    dusk = build_spec("day-to-dusk", sky="clear dusk", enhancements=["lawn touch up"])
    words = describe(dusk.service, *identity_parts(dusk))
    assert words.altered == (
        "Day to Dusk (daylight turned to dusk)",
        "Sky: Clear Dusk",
        "Lawn Touch-Up",
    )
    assert words.exempt == ()
    v1 = describe("service-image-enhancement", "space-ie-indoor", ["add screen to tv"])
    assert (v1.altered, v1.exempt) == (("Add Screen to TV",), ("exposure, colour, sharpness",))
    plain = describe("service-image-enhancement", "space-ie-outdoor", [])
    assert (plain.alters, plain.altered, plain.exempt) == (
        False,
        (),
        ("exposure, colour, sharpness",),
    )
    odd = describe("service-image-enhancement", "space-ie-indoor", ["add unicorn"])
    assert odd.alters and odd.altered == ("add unicorn",)
    unknown = describe("v3:tool-magic-eraser", "", [])
    assert unknown.alters
    assert unknown.altered == (
        "Magic Eraser (a tool aihd does not know: counted as an alteration)",
    )
    staged = describe("service-ai-virtual-staging", "", [])
    assert staged.altered == ("Virtual Staging (furniture added)",)


def test_v3_identities_of_photos_already_ordered_do_not_change() -> None:
    """Existing ledgers hold paid v3 photos of the four tools aihd ordered before this table:
    their identity (service, space, item slugs) is pinned byte for byte."""
    sha = "ab" * 32
    pinned = {
        "c7ce8b90575d9d94120d2c16e371963be601e77e19e8c34f87ddc63b2e9697d0": build_spec(
            "image-enhancement"
        ),
        "1c6ddb464046953304e5d0f6d2ef2dcc26013371502de3efaa0aaa58affbd957": build_spec(
            "Image Enhancement",
            space="Outdoor",
            enhancements=["add screen to tv", "Add Fire to Fireplace"],
        ),
        "fcda5dbd92a66a9a5e43f21e86154bc8e71486d26b8ed3352c10d7debb5dd562": build_spec(
            "day-to-dusk"
        ),
        "914c935458c1cbe0fd2673e74c0142c0480ca70b2c625629b00c7859951af440": build_spec(
            "tool-day-to-dusk", enhancements=["Lawn Touch-Up", "shadow removal"]
        ),
        "d965de86eeac90e3e4a070eac972279308fac296df2bd7d2ad00a8721db6c00a": build_spec(
            "item removal"
        ),
        "afab5dce3c9e5fb3ac9433c32f25bcbd9a2e5dda66ef9b2e1eae7a1e0ef69b24": build_spec(
            "virtual-staging", room="Living Room", style="scandinavian"
        ),
    }
    for identity, spec in pinned.items():
        assert PhotoOptions(spec.service, *identity_parts(spec)).identity(sha) == identity


def test_the_emulator_serves_the_tools_with_the_tables_slugs() -> None:
    """The emulator's own table (written apart) and aihd's agree on every served tool's slots,
    widgets and items; it serves neither of the two the vendor reports missing."""
    for slug, tool in served.TOOLS.items():
        known = tools.TOOLS[slug]
        assert tool.slots == known.slots
        assert [w.slug for w in tool.widgets] == [w.slug for w in known.widgets]
        for widget, ours in zip(tool.widgets, known.widgets, strict=True):
            assert list(widget.items) == [ours.item_slug(i) for i in ours.items]
            assert (widget.kind == "multi", widget.omittable) == (ours.multi, ours.api_default)
    assert set(served.TOOLS) == set(tools.TOOLS) - set(NOT_FOUND_LIVE)


def _sky_body(order: str, asset: str, tool: str = "tool-day-to-dusk", *sky: str) -> Any:
    widgets = [{"slug": SKY, "item_slugs": [f"item-{s}-{SKY}" for s in sky]}] if sky else []
    return {"order_id": order, "tool": tool, "asset_map": {f"{tool}-input-image": asset},
            "widgets": widgets}  # fmt: skip


async def _post_order(session: aiohttp.ClientSession, url: str, photo: bytes) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field("asset_file", photo, filename="a.jpg", content_type="image/jpeg")
    form.add_field("asset_role", "primary_angle")
    async with session.post(f"{url}/v3/order", data=form) as answer:
        return answer.status, await answer.json()


def _jpeg() -> bytes:
    import io

    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 180, 150)).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.parametrize("omitted", ["defaulted", "refused"])
def test_the_emulator_takes_the_vendors_sky_items_and_refuses_others(
    tmp_path: Path, omitted: str
) -> None:
    """dusk-with-cloud, clear-dusk, golden-hour: accepted; blue-hour, twilight: 422. A sky left
    out is defaulted, or refused under omitted_widgets=refused. The two tools the vendor
    reports missing are a 500 "tool not found"; nothing refused is charged."""
    readings = V3Readings(omitted_widgets=omitted)  # type: ignore[arg-type]
    config = SandboxConfig(api_key=secrets.token_urlsafe(24), time_scale=0.01, v3=readings)

    async def scenario(sandbox: Sandbox) -> dict[str, int]:
        headers = {"x-api-key": sandbox.api_key}
        async with aiohttp.ClientSession(headers=headers) as session:
            _, created = await _post_order(session, sandbox.url, _jpeg())
            order, asset = created["data"]["order_id"], created["data"]["assets"][0]["id"]
            asked = {
                **{s: _sky_body(order, asset, "tool-day-to-dusk", s) for s in
                   ("dusk-with-cloud", "clear-dusk", "golden-hour", "blue-hour", "twilight")},
                "no sky": _sky_body(order, asset),
                "furniture-set-restyle": _sky_body(order, asset, "tool-furniture-set-restyle"),
                "sky-change": _sky_body(order, asset, "tool-sky-change"),
            }  # fmt: skip
            statuses = {}
            for name, body in asked.items():
                async with session.post(f"{sandbox.url}/v3/process", json=body) as answer:
                    statuses[name] = answer.status
                    text = await answer.text()
                    if answer.status == 500:
                        assert "tool repository: tool not found" in text
            return statuses

    with SandboxThread(config) as sandbox:
        statuses = asyncio.run(scenario(sandbox))
        charged = sandbox.stats().processes_charged
    accepted = {"dusk-with-cloud": 201, "clear-dusk": 201, "golden-hour": 201}
    assert statuses == {
        **accepted,
        "blue-hour": 422,
        "twilight": 422,
        "no sky": 201 if omitted == "defaulted" else 422,
        "furniture-set-restyle": 500,
        "sky-change": 500,
    }
    assert charged == sum(1 for s in statuses.values() if s == 201)


def test_the_emulators_defaults_are_the_vendors_documented_request_shapes() -> None:
    """Written from the vendor client's code, not by running it: its key check (GET
    /v3/project?page=1&limit=1), its order (asset_file with a singular asset_role per file),
    its process (read as process_ids[0]), every answer wrapped in {"data", "message"}, and its
    result link read as src, else temp_src. Under the emulator's default readings each works;
    the plural role field is refused."""
    config = SandboxConfig(api_key=secrets.token_urlsafe(24), time_scale=0.01)

    async def scenario(sandbox: Sandbox) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with aiohttp.ClientSession(headers={"x-api-key": sandbox.api_key}) as session:
            url = sandbox.url
            async with session.get(f"{url}/v3/project", params={"page": 1, "limit": 1}) as a:
                seen["key check"] = (a.status, await a.json())
            async with (
                aiohttp.ClientSession(headers={"x-api-key": "wrong-key-123"}) as wrong,
                wrong.get(f"{url}/v3/project", params={"page": 1, "limit": 1}) as a,
            ):
                seen["wrong key"] = a.status
            seen["order"] = await _post_order(session, url, _jpeg())
            plural = aiohttp.FormData()
            plural.add_field("asset_file", _jpeg(), filename="b.jpg", content_type="image/jpeg")
            plural.add_field("asset_roles", "primary_angle")
            async with session.post(f"{url}/v3/order", data=plural) as a:
                seen["plural role"] = a.status
            created = seen["order"][1]["data"]
            ie, options = "tool-image-enhancement", "widget-enhancement-options"
            body = {
                "order_id": created["order_id"],
                "tool": ie,
                "asset_map": {f"{ie}-input-image": created["assets"][0]["id"]},
                "widgets": [
                    {"slug": f"widget-area-{ie}", "item_slugs": [f"item-indoor-widget-area-{ie}"]},
                    {"slug": f"{options}-{ie}", "item_slugs": [
                        f"item-add-fire-to-fireplace-{options}-{ie}",
                        f"item-add-screen-to-tv-{options}-{ie}",
                    ]},
                ],
            }  # fmt: skip
            async with session.post(f"{url}/v3/process", json=body) as a:
                seen["process"] = (a.status, await a.json())
            process_id = seen["process"][1]["data"]["process_ids"][0]
            deadline = time.monotonic() + 20
            while True:
                async with session.get(f"{url}/v3/process/{process_id}") as a:
                    record = (await a.json())["data"]
                if record["status"] in ("done", "failed") or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            seen["done"] = record
            final = record["final_assets"][0]
            async with session.get(final.get("src") or final.get("temp_src")) as a:
                seen["download"] = (a.status, await a.read())
        return seen

    with SandboxThread(config) as sandbox:
        seen = asyncio.run(scenario(sandbox))
        stats = sandbox.stats()
    status, listed = seen["key check"]
    assert status == 200 and set(listed) == {"data", "message", "pagination"}
    assert seen["wrong key"] == 401
    status, order = seen["order"]
    assert status == 201 and order["message"] == "ok"
    assert set(order["data"]) == {"order_id", "assets"} and order["data"]["assets"][0]["id"]
    assert seen["plural role"] == 400
    status, process = seen["process"]
    assert status == 201 and process["message"] == "ok"
    assert isinstance(process["data"]["process_ids"], list) and "process_id" not in process["data"]
    assert seen["done"]["status"] == "done"
    final = seen["done"]["final_assets"][0]
    assert final["src"] and final["temp_src"] and final["src"] != final["temp_src"]
    assert seen["download"][0] == 200 and seen["download"][1][:3] == b"\xff\xd8\xff"
    assert stats.processes_charged == 1


def test_aihd_catalog_api_v3_lists_tools_widgets_items_and_labels() -> None:
    """`aihd catalog --api v3 --sandbox`: the tools list's tools, each with its manifest keys,
    values and labels; the two the API does not find are shown apart, not orderable."""
    text = aihd(["catalog", "--api", "v3", "--sandbox"], None)
    assert text.returncode == 0, text.stderr
    assert "day-to-dusk  Day to Dusk  (alters the photo)" in text.stdout
    assert "  sky: one of (optional: the API picks one if left out)" in text.stdout
    assert "    - golden-hour  Golden Hour" in text.stdout
    assert "image-enhancement  Image Enhancement  (an exempt edit)" in text.stdout
    offered, _, absent = text.stdout.partition("not offered by the API's tools list:")
    assert "sky-change  Sky Change" in absent and "sky-change" not in offered
    done = aihd(["catalog", "--api", "v3", "--sandbox", "--json"], None)
    described = {t["tool"]: t for t in json.loads(done.stdout)}
    assert set(described) == {t.removeprefix("tool-") for t in tools.TOOLS}
    dusk = described["day-to-dusk"]
    assert (dusk["label"], dusk["offered"], dusk["orderable"]) == ("Day to Dusk", True, True)
    (sky,) = [w for w in dusk["widgets"] if w["key"] == "sky"]
    assert sky["slug"] == SKY and [i["value"] for i in sky["items"]] == [
        "dusk-with-cloud",
        "clear-dusk",
        "golden-hour",
    ]
    assert sky["items"][2] == {
        "value": "golden-hour",
        "label": "Golden Hour",
        "slug": f"item-golden-hour-{SKY}",
        "alters": True,
    }
    assert described["sky-change"]["offered"] is False
    assert described["sky-change"]["orderable"] is False
    assert described["item-removal-mask"]["orderable"] is False
    assert "use item-removal" in described["item-removal-mask"]["why_not"]
