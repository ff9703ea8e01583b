"""The client's view of many servers: targets and resolvers, subchannels, load balancing.

``target`` parses a gRPC target and names its resolver; ``balancer`` (with ``subchannel``) decides
which connection a new call takes and which connection attempts to make. Both are sans-I/O: the
channels (``rpc._aio.channel``, ``rpc.sync.client``) perform what they ask and only wait.
"""
