"""pipemail engine: personal mailbox sync for CRMs, with no dependency on Odoo.

The Odoo addons (``pipemail_sync`` and friends) only orchestrate: everything that
speaks a protocol, parses mail or makes a decision about mail lives here, typed and
tested against real servers.
"""

from pipemail.errors import PipemailError

__version__ = "18.0.1.0.0"
__all__ = ["PipemailError", "__version__"]
