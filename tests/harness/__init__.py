"""Real servers on loopback for pipemail's end-to-end tests.

Import from here (``from harness import Dovecot``; ``tests/`` is on ``sys.path`` via
``tests/conftest.py``) or use the fixtures in ``tests/conftest.py``. See README.md.
"""

from ._common import HarnessError, TLSMaterial, free_port, tls_material
from .dovecot import SPECIAL_FOLDERS, Dovecot, User
from .oauth_server import OAuthServer, RequestRecord
from .proxy import TCPProxy
from .smtp import ReceivedMessage, Rejection, SmtpSink

__all__ = [
    "SPECIAL_FOLDERS",
    "Dovecot",
    "HarnessError",
    "OAuthServer",
    "ReceivedMessage",
    "Rejection",
    "RequestRecord",
    "SmtpSink",
    "TCPProxy",
    "TLSMaterial",
    "User",
    "free_port",
    "tls_material",
]
