"""Real servers on loopback for pipemail's end-to-end tests.

Import from here (``from harness import Dovecot``; ``tests/`` is on ``sys.path`` via
``tests/conftest.py``) or use the fixtures in ``tests/conftest.py``. See README.md.
"""

from ._common import HarnessError, TLSMaterial, free_port, tls_material
from .dovecot import SPECIAL_FOLDERS, Dovecot, User
from .llama_server import AITierUnavailable, LlamaServer
from .oauth_server import OAuthServer, RequestRecord
from .proxy import TCPProxy
from .scripted_llm import RecordedRequest as LLMRequest
from .scripted_llm import ScriptedLLM
from .smtp import ReceivedMessage, Rejection, SmtpSink

__all__ = [
    "SPECIAL_FOLDERS",
    "AITierUnavailable",
    "Dovecot",
    "HarnessError",
    "LLMRequest",
    "LlamaServer",
    "OAuthServer",
    "ReceivedMessage",
    "Rejection",
    "RequestRecord",
    "ScriptedLLM",
    "SmtpSink",
    "TCPProxy",
    "TLSMaterial",
    "User",
    "free_port",
    "tls_material",
]
