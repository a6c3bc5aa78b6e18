"""HTTP/1.1 without I/O: the request parser (C or Python), the protocol state machine, the
request and response values, limits and errors. Imports nothing else of reactor."""
