from . import res_config_settings
from . import ir_actions_server
from . import pipemail_outbox_automation
from . import pipemail_followup
from . import crm_lead
from . import base_automation
