"""A session's data plane over iceoryx2: channels, endpoints, messages, and a client's attach.

Imports only ``noded.contract`` and ``noded.errors`` of noded."""
