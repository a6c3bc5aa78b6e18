"""Sockets and time: the loop, listeners and accepting, connections, transports (plain and
TLS) and the fast lane. Knows HTTP framing through reactor.http, never files or routes."""
