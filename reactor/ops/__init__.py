"""Running it for real, above the server: the supervisor (workers, restarts, re-exec,
inherited sockets), the PROXY protocol, forwarding rules, health, metrics and the access
log. The server imports nothing of it; what it needs is installed on it from here."""
