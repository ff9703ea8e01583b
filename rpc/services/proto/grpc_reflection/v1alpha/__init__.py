"""Generated protobuf modules (see ``rpc.services.proto``)."""
