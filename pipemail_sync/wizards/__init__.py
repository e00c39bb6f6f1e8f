from . import pipemail_link_wizard
