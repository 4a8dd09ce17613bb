"""Built-in adapters, one module per implementation.

Kept as import strings so that naming or listing them imports no framework:
each framework is imported inside its adapter's `load()`, in its own worker.
"""

BUILTIN: dict[str, str] = {
    "numpy-reference": "conformance.adapters.numpy_reference:NumpyReference",
}
