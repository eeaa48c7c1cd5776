"""Connectors: one package per source; each turns API answers into canonical records (``core.records``)."""
