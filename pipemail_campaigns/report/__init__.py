from . import pipemail_email_stat
from . import pipemail_email_report
from . import pipemail_email_dashboard
