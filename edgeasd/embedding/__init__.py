"""Embedding: audio windows → fixed-size vectors.

:mod:`~edgeasd.embedding.onnx` runs one ONNX model (:class:`Embedder`, :class:`ModelInfo`);
:mod:`~edgeasd.embedding.ensemble` combines several into one; :mod:`edgeasd.embedding.models`
holds the shipped models and picks the default. Importing this package imports neither
onnxruntime nor torch.
"""
