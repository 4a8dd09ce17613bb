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


# The caches above that the frameworks own, and what says that one of their artifacts failed to
# load: regular expressions over the message of an `error` record ("{folder}" stands for the
# cache's folder, escaped), and how to run one case without that cache in this process.  A case
# with such an error is run once more without the cache before anything is recorded
# (conformance/execution/cache.py, rerun_without_bad_artifacts); other errors are never rerun.
# JAX's persistent cache needs no entry: JAX reads a failing entry as a miss itself (a warning,
# then it compiles), so its poisoned entries never reach a record.
def _inductor_off():
    """torch Inductor without its cache folder: Dynamo's compiled frames dropped, and Inductor
    on a fresh temporary folder of its own (its in-memory caches cleared on the way in and out),
    as a run with --no-cache would compile."""
    import contextlib

    import torch._dynamo
    from torch._inductor.utils import fresh_cache

    @contextlib.contextmanager
    def off():
        torch._dynamo.reset()
        try:
            with fresh_cache():
                yield
        finally:
            torch._dynamo.reset()  # nothing compiled from the temporary folder outlives it

    return off()


CACHE_LOAD_ERRORS: dict[str, tuple[tuple[str, ...], object]] = {
    # Inductor builds the C++ of a graph it finds in its cache (and links it against the cached
    # kernels) without checking them: a truncated .so, .cpp or .py there is a CppCompileError or
    # an import error naming the file.  A real compile error is rerun once too, and stays.
    "TORCHINDUCTOR_CACHE_DIR": ((r"\bCppCompileError\b", r"{folder}/"), _inductor_off),
}
