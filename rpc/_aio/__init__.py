"""The asyncio shells: channel, calls, server and server calls that wait on an event loop for
what ``rpc._core`` decides. Their public names are re-exported by ``rpc``."""
