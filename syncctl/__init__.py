"""syncctl: keeps an ERP and its sales channels in step, and asks carriers where parcels are."""

__version__ = "0.1.0"
