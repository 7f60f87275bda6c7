"""The inference engine: plain Python and PyTorch, no Django.

It takes DICOM datasets or arrays and metadata and returns arrays and findings:
`decode.decode_series` -> `loading.load_network` -> `pipeline.run`. Import the modules you need;
this package imports nothing heavy on its own so `inference.engine.types` stays cheap.
"""
