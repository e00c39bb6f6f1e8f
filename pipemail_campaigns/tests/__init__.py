from . import test_group_email
from . import test_group_email_security
from . import test_unsubscribe
from . import test_automation_send
from . import test_followup
from . import test_followup_workers
from . import test_ready_made
from . import test_email_report
