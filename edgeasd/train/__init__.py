"""Training, export and int8 quantization of embedding models (the ``train`` extra).

This is the only package that imports torch; the agent only needs onnxruntime and the
exported ``.onnx`` files. Modules:

* ``frontend``: exportable feature code (STFT magnitude, log1p FFT, mel filterbank),
* ``spectral``: the no-training log-mel statistics baseline model,
* ``export``: torch → self-contained ONNX with edgeasd ``metadata_props``,
* ``data``, ``directact``, ``adaproj``, ``trainer``: Direct-ACT and its training,
* ``quantize``: static int8 QDQ quantization with calibration clips.
"""
