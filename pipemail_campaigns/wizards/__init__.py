from . import pipemail_group_email_wizard
