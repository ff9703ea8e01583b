"""Wire tracing: the tracer that hooks into connections (``tracer``) and the text and JSON forms
of its events (``format``); Wireshark captures of the same connections (``capture``, which
writes the pcapng bytes ``pcapng`` builds)."""
