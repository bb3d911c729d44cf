"""What the daemon, nodectl and a worker agree on.

Specs, status text, the wire format, the stats block, the control protocol and its
client, states, exit codes and built-in class names. Imports nothing of noded but
``noded.errors``; nothing here talks to systemd or iceoryx2.
"""
