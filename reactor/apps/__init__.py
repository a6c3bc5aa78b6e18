"""Dynamic answers: App routes and mounts, and the WSGI adapter. Handlers, like
reactor.static: they turn a Request into a Response and never see a socket."""
