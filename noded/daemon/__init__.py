"""The ``noded`` server: sessions as transient systemd units, the control socket, metrics and configuration.

Nothing imports this package but its own entry point (``noded.daemon.main``)."""
