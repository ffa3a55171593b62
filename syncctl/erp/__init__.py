"""The ERP port and its SQL adapter over the integration schema (contract §5)."""

from syncctl.erp.port import Erp
from syncctl.erp.sql import SqlErp, check_schema, init_schema, open_erp

__all__ = ["Erp", "SqlErp", "check_schema", "init_schema", "open_erp"]
