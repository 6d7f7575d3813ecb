"""Export of trained students for the edge: ONNX, the int8 gate, signed artifacts.

This is the torch side of deployment; :mod:`pcnalloc.edge` (what runs on a controller) only
reads what this package writes and never imports torch.
"""
