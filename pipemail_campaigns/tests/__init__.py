from . import test_automation_send
from . import test_followup
from . import test_followup_workers
from . import test_ready_made
from . import test_email_report
