from . import res_config_settings
from . import pipemail_account
from . import pipemail_outbox
from . import pipemail_group_email
from . import pipemail_group_email_recipient
from . import pipemail_message
