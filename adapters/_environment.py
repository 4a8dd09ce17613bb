"""The frameworks' environment variables every worker gets (the engine reads these and names no
framework itself): their thread and logging settings, and their persistent compilation caches.
"""
from __future__ import annotations

# The caches kept in the run's cache folder (--cache-dir, conformance/execution/cache.py), "{folder}"
# standing for that folder.
CACHE_ENV: dict[str, str] = {
    # JAX's persistent compilation cache: the JAX-family adapters and keras-jax.
    "JAX_COMPILATION_CACHE_DIR": "{folder}/jax",
    # Every compilation is worth keeping: the suite's are small and many.
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
    # torch Inductor's cache (torch-compile).
    "TORCHINDUCTOR_CACHE_DIR": "{folder}/inductor",
}

# Every worker's thread and logging settings of the frameworks (one thread each: --jobs decides
# parallelism; conformance/execution/adapter_refs.py).
WORKER_ENV: dict[str, str] = {
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
