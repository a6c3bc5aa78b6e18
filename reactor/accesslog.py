"""Access log in Common Log Format, written once per loop iteration rather than per line.

A line is written when its response has ended (written in full, or cut short by the client or
a timeout), with the body bytes actually sent, as nginx does.

Knows requests and a text stream; must not import sockets or the loop (it is handed a
`schedule` callable to run the flush later).
"""

import time

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class AccessLog:
    def __init__(self, stream, schedule):
        self.stream = stream
        self.schedule = schedule
        self.lines = []
        self._stamp = 0
        self._when = ""

    def _timestamp(self) -> str:
        now = int(time.time())
        if now != self._stamp:
            t = time.gmtime(now)
            self._when = "%02d/%s/%04d:%02d:%02d:%02d +0000" % (
                t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)
            self._stamp = now
        return self._when

    def log(self, client, request, status: int, sent: int):
        """One line for a response that has ended: `sent` body bytes actually written."""
        if not self.lines:
            self.schedule(self.flush)
        self.lines.append('%s - - [%s] "%s %s HTTP/1.%d" %d %d\n' % (
            client[0], self._timestamp(), request.method, request.target.replace('"', "%22"),
            request.version - 10, status, sent))

    def flush(self):
        lines, self.lines = self.lines, []
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except (OSError, ValueError):
            pass   # a closed or broken log stream must not take the server down
