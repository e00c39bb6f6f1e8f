from . import test_api_key
