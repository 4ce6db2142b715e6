"""The v1 API's shapes: paths, names and JSON records. Shared by the client and the sandbox,
which share nothing else (see ``docs/api/AIHOMEDESIGN_API.md``)."""

from __future__ import annotations

__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_BASE_URL",
    "ITEMS_PATH",
    "MAX_PHOTO_BYTES",
    "ORDER_PATH",
    "SERVICE",
    "SPACES_PATH",
    "STATUS_IDLE",
    "SUBMIT_PATH",
    "UPLOAD_PATH",
    "UPSCALE_PATH",
    "ErrorBody",
    "GeneratedImageRecord",
    "ItemRecord",
    "OrderRecord",
    "SelectedWidget",
    "SpaceRecord",
    "SubmitRequest",
    "SubmitResponse",
    "UploadResponse",
    "WidgetRecord",
]

from typing import Final, NotRequired, TypedDict

SERVICE: Final = "service-image-enhancement"
DEFAULT_BASE_URL: Final = "https://api.aihomedesign.com"
API_KEY_HEADER: Final = "x-api-key"
MAX_PHOTO_BYTES: Final = 50 * 1024 * 1024

UPLOAD_PATH: Final = "/v1/order/image"
SPACES_PATH: Final = "/v1/catalog/spaces"
ITEMS_PATH: Final = "/v1/catalog/items/filter"
SUBMIT_PATH: Final = "/v1/order"
ORDER_PATH: Final = "/v1/order/{order_id}"
UPSCALE_PATH: Final = "/v1/order/image/{generated_image_id}/download/upscale"  # 2.7

# Order statuses. The docs show only "idle"; the rest are the sandbox's and our reading.
# Reconciliation treats anything but "idle with no generated images" as submitted.
STATUS_IDLE: Final = "idle"


class ErrorBody(TypedDict):
    error: str
    key: NotRequired[str]


class UploadResponse(TypedDict):
    order_id: str


class SpaceRecord(TypedDict):
    id: str
    name: str
    title: str
    description: str
    prompt: str
    icon_src: str
    is_active: bool
    is_premium: bool


class ItemRecord(TypedDict):
    id: str
    title: str
    prompt: str
    icon_src: str
    is_premium: bool


class WidgetRecord(TypedDict):
    id: str
    title: str
    description: str
    is_optional: bool
    items: list[ItemRecord]
    priority: int
    type: str


class SelectedWidget(TypedDict):
    id: str
    item_id: str


class SubmitRequest(TypedDict):
    order_id: str
    space_name: str
    selected_widgets: list[SelectedWidget]


class SubmitResponse(TypedDict):
    order_id: str
    image_id: str
    eta: int


class GeneratedImageRecord(TypedDict):
    id: str
    sequence: int
    src: str
    status: str
    order_id: str


class OrderRecord(TypedDict):
    id: str
    status: str
    service_name: str
    before_image_id: str
    before_image_src: str
    space: str
    generated_images: list[GeneratedImageRecord]
    created_at: str


class UpscaleResponse(TypedDict):
    status: str  # "processing" (2.7): the upscaled photo arrives by webhook only


class WebhookImage(TypedDict):
    """2.6's ``image``: one generated image of a finished order."""

    id: str
    before_src: str
    after_src: str
    regenerated: bool
    style: str
    color: str
    space: str
    sky_style: str
    shadow_removal: bool
    material: str
    created_at: str


class GeneratedImageWebhook(TypedDict):
    """2.6: an order's image is ready. Unsigned: a hint, never trusted as it stands."""

    order_id: str
    image: WebhookImage
    service_name: str
    user_id: str


class UpscaleWebhook(TypedDict):
    """2.7: an upscale is ready; matched by ``generated_image_id``."""

    generated_image_id: str
    upscaled_image_src: str
    user_id: str
