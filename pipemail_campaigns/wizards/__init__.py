from . import pipemail_compose_followup
