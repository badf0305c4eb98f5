"""Tools of a pretend shop, contributed through an entry point (see pyproject.toml)."""

from __future__ import annotations

import os
import threading

ORDERS = {42: {"item": "blue teapot", "status": "shipped", "eta": "2026-05-04"}}


def lookup_order(order_id: int) -> dict[str, object]:
    """Look up a shop order by its number.

    A sync function: the worker runs it in a thread (the result says which, for the tests).
    """
    if order_id not in ORDERS:
        from activities.tools.registry import ToolError

        raise ToolError(f"there is no order {order_id}")
    return {
        "order_id": order_id,
        **ORDERS[order_id],
        "thread": "main" if threading.current_thread() is threading.main_thread() else "worker",
        "pid": os.getpid(),
    }
