from . import test_visibility
from . import test_sync
from . import test_linking
from . import test_inbox_views
from . import test_rendering_xss
from . import test_workers
from . import test_oauth
from . import test_outbound_send
