"""Built-in adapters, one module per implementation.

Kept as import strings so that naming or listing them imports no framework:
each framework is imported inside its adapter's `load()`, in its own worker.
"""

# Listed slowest first (cold: compilations and exports), each worker group's adapters together:
# without the timings of a previous run (conformance/execution/schedule.py) the runner starts tasks in this order.
BUILTIN: dict[str, str] = {
    "torch-onnx": "conformance.adapters.torch_onnx:TorchOnnx",
    "flax-linen": "conformance.adapters.flax_linen:FlaxLinenRMSNorm",
    "flax-nnx": "conformance.adapters.flax_nnx:FlaxNNXRMSNorm",
    "equinox": "conformance.adapters.equinox_nn:EquinoxRMSNorm",
    "pallas": "conformance.adapters.pallas:PallasRMSNorm",
    "keras-jax": "conformance.adapters.keras_layer:KerasJax",
    "keras-torch": "conformance.adapters.keras_layer:KerasTorch",
    "keras-tensorflow": "conformance.adapters.keras_layer:KerasTensorFlow",
    "tensorflow": "conformance.adapters.tensorflow_ops:TensorFlowOpsRMSNorm",
    "keras-numpy": "conformance.adapters.keras_layer:KerasNumpy",
    "hf-gemma": "conformance.adapters.hf_transformers:HFGemma",
    "hf-llama": "conformance.adapters.hf_transformers:HFLlama",
    "hf-t5": "conformance.adapters.hf_transformers:HFT5",
    "torch": "conformance.adapters.torch_nn:TorchRMSNorm",
    "torch-functional": "conformance.adapters.torch_functional:TorchFunctional",
    "onnxruntime": "conformance.adapters.onnx_op:OnnxRuntime",
    "onnx-reference": "conformance.adapters.onnx_op:OnnxReference",
    "onnxruntime-simplified": "conformance.adapters.onnxruntime_simplified:OnnxRuntimeSimplified",
    "openvino": "conformance.adapters.openvino_ops:OpenVinoRMSNorm",
    "mlx": "conformance.adapters.mlx_fast:MlxFast",
    "mlx-nn": "conformance.adapters.mlx_nn:MlxNN",
    "liger": "conformance.adapters.liger:LigerRMSNorm",
    "numpy-reference": "conformance.adapters.numpy_reference:NumpyReference",
    # Execution modes (adapters/modes.py): each a compiled or eager twin of an adapter above.
    "torch-compile": "conformance.adapters.modes:TorchCompile",
    "tensorflow-xla": "conformance.adapters.modes:TensorFlowXla",
    "keras-tensorflow-jit": "conformance.adapters.modes:KerasTensorFlowJit",
    "flax-nnx-eager": "conformance.adapters.modes:FlaxNNXEager",
}
# Each execution mode and the adapter it is the twin of.  Compiled modes compile once per
# shape, so they run the small `modes` suite (cases/suites.py), with their twins, not the
# standard one: `--adapters all` is every other adapter, `--adapters modes` these and their twins.
MODE_TWINS: dict[str, str] = {"torch-compile": "torch", "tensorflow-xla": "tensorflow",
                              "keras-tensorflow-jit": "keras-tensorflow", "flax-nnx-eager": "flax-nnx"}
ALL: list[str] = [name for name in BUILTIN if name not in MODE_TWINS]
MODES: list[str] = [name for pair in MODE_TWINS.items() for name in pair]
