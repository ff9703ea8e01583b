"""Wire tracing: the tracer that hooks into connections (``tracer``) and the text and JSON forms
of its events (``format``)."""
