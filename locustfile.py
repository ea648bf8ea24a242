"""Blue Harvests personas for Locust: ``locust -f locustfile.py --host URL``.

Works as any locustfile does (web UI, -u/-r, --headless). Users log in with
the identities written by ``loadgate fixtures load`` (or
``--loadgate-credentials PATH``). ``loadgate run`` adds the phase's load
shape (``scenarios/loadgate_shape.py``) and raw per-request capture.
"""

from scenarios import plugin  # noqa: F401  (registers loadgate's event hooks)
from scenarios.personas import (
    AdminUser,
    BuyerUser,
    DriverUser,
    FarmerUser,
    OperationsUser,
    ShopperUser,
)

__all__ = ["AdminUser", "BuyerUser", "DriverUser", "FarmerUser", "OperationsUser", "ShopperUser"]
