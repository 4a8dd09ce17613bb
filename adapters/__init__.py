"""Built-in adapters, one module per implementation.

Kept as import strings so that naming or listing them imports no framework:
each framework is imported inside its adapter's `load()`, in its own worker.
"""

# Listed slowest first: the runner starts tasks in this order, so the JAX-compiled
# adapters (one XLA compilation per shape, dtype, axes and epsilon) start early.
BUILTIN: dict[str, str] = {
    "keras-jax": "conformance.adapters.keras_layer:KerasJax",
    "flax-nnx": "conformance.adapters.flax_nnx:FlaxNNXRMSNorm",
    "flax-linen": "conformance.adapters.flax_linen:FlaxLinenRMSNorm",
    "equinox": "conformance.adapters.equinox_nn:EquinoxRMSNorm",
    "keras-torch": "conformance.adapters.keras_layer:KerasTorch",
    "keras-tensorflow": "conformance.adapters.keras_layer:KerasTensorFlow",
    "tensorflow": "conformance.adapters.tensorflow_ops:TensorFlowOpsRMSNorm",
    "keras-numpy": "conformance.adapters.keras_layer:KerasNumpy",
    "hf-gemma": "conformance.adapters.hf_transformers:HFGemma",
    "hf-llama": "conformance.adapters.hf_transformers:HFLlama",
    "hf-t5": "conformance.adapters.hf_transformers:HFT5",
    "onnxruntime": "conformance.adapters.onnx_op:OnnxRuntime",
    "onnx-reference": "conformance.adapters.onnx_op:OnnxReference",
    "torch-onnx": "conformance.adapters.torch_onnx:TorchOnnx",
    "torch": "conformance.adapters.torch_nn:TorchRMSNorm",
    "torch-functional": "conformance.adapters.torch_functional:TorchFunctional",
    "numpy-reference": "conformance.adapters.numpy_reference:NumpyReference",
}
