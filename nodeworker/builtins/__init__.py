"""Nodes that ship with nodeworker; their short names are in ``nodeworker.registry``."""
