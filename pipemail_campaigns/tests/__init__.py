from . import test_group_email
from . import test_group_email_security
from . import test_unsubscribe
