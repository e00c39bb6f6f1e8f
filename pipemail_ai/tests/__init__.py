from . import test_api_key
from . import test_ai_helpers
from . import test_ai_tours
