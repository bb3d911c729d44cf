"""The node process: ``python -m noded.worker --spec JSON`` hosts one node in a systemd unit."""
