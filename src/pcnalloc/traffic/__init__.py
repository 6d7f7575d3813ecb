"""Service catalog, offered-load rates, daily profile and request arrivals."""

from pcnalloc.traffic.catalog import Catalog, ServiceClass, load_catalog
from pcnalloc.traffic.generator import KINDS, Request, TrafficModel

__all__ = ["KINDS", "Catalog", "Request", "ServiceClass", "TrafficModel", "load_catalog"]
