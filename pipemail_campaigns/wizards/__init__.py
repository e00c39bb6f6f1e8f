from . import pipemail_group_email_wizard
from . import pipemail_compose_followup
from . import pipemail_group_email_wizard_draft
