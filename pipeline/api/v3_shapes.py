"""The v3 API's shapes: paths, names and statuses (``docs/api/AIHOMEDESIGN_V3.md``).

Paths are relative to the API's host, as v1's are. The tools list lives on the web app's host
(``https://app.aihomedesign.com/api/tools``, no key); a sandbox serves it on its own host.
"""

from __future__ import annotations

__all__ = [
    "ASSET_FILE_FIELD",
    "MIN_POLL_SECONDS",
    "ORDERS_PATH",
    "ORDER_IDLE",
    "ORDER_PATH",
    "PRIMARY_ANGLE",
    "PROCESSES_PATH",
    "PROCESS_DONE",
    "PROCESS_FAILED",
    "PROCESS_PATH",
    "PROJECTS_PATH",
    "REAL_API_HOST",
    "TOOLS_PATH",
    "TOOLS_URL",
]

from typing import Final

PROJECTS_PATH: Final = "/v3/project"
PROJECT_PATH: Final = "/v3/project/{project_id}"
ORDERS_PATH: Final = "/v3/order"
ORDER_PATH: Final = "/v3/order/{order_id}"
PROCESSES_PATH: Final = "/v3/process"
PROCESS_PATH: Final = "/v3/process/{process_id}"
TOOLS_PATH: Final = "/api/tools"
TOOLS_URL: Final = "https://app.aihomedesign.com/api/tools"
REAL_API_HOST: Final = "api.aihomedesign.com"

ASSET_FILE_FIELD: Final = "asset_file"
PRIMARY_ANGLE: Final = "primary_angle"  # the role a lone asset gets when none is sent

# Statuses (notes section 2): a process goes pending -> processing -> done | failed; an order is
# "idle" until a process runs. Others are read as "not done yet".
PROCESS_DONE: Final = "done"
PROCESS_FAILED: Final = "failed"
ORDER_IDLE: Final = "idle"

# The API asks for no more than one poll per process every 5 s (notes section 8).
MIN_POLL_SECONDS: Final = 5.0

# The webhook (notes section 7): {event, process_id, order_id, tool, status, final_assets}.
EVENT_PROCESS_COMPLETED: Final = "process.completed"
