"""Training, export and int8 quantization of embedding models (the ``train`` extra).

Only the modules that build or train networks import torch; the agent only needs
onnxruntime and the exported ``.onnx`` files. Modules:

* ``frontend``: exportable feature code (STFT magnitude, log1p FFT, mel filterbank),
* ``spectral``: the no-training log-mel statistics baseline model,
* ``directact``, ``adaproj``, ``trainer``: Direct-ACT, its loss and training loop,
* ``subcluster``: sub-cluster AdaCos, the alternative loss (``--loss subcluster``);
  ``adacos``: the AdaCos scale and soft-target cross-entropy both losses share,
* ``data``: DCASE-layout clips and auxiliary classes (torch-free),
* ``export``: torch → self-contained ONNX; ``metadata``: the ``metadata_props``
  contract (torch-free),
* ``quantize``: static int8 QDQ quantization with calibration clips (torch-free),
* ``deploy``: checkpoint → fp32 + int8 files (``edgeasd export``),
* ``quality``: model-card measurements on real clips (torch-free).
"""
