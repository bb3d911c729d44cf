"""noded: the session manager daemon and its control client."""

__version__ = "0.1.0"
