"""Version 1 of the contract, generated from
proto/sentiric/plugin/v1/plugin.proto (`generate.py`): the messages in
`plugin_pb2` (typed, `plugin_pb2.pyi`), the services' servicers and stubs
in `plugin_pb2_grpc`."""
