"""Decisions shared by the asyncio and the blocking API: no waiting, no sockets, no threads.

Channel and server settings, one client call's and one server call's state machines, message
framing, deadlines, backoff, the registry of handlers. ``rpc._aio`` and ``rpc.sync`` are the
shells that wait for them; nothing here imports either.
"""
