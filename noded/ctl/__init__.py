"""``nodectl``: the command line, one module per command group, rendering, and the media files it feeds.

Nothing imports this package but its own entry point (``noded.ctl.main``)."""
