from . import pipemail_link_wizard
from . import pipemail_compose
from . import pipemail_compose_schedule
from . import pipemail_compose_draft
