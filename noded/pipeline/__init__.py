"""Pipeline files: the schema, the checks, and the topology of channels they turn into.

Used by the daemon (which checks every pipeline it runs) and by clients (which resolve and draw them)."""
