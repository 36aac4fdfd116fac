"""Use cases. They validate, change the models and flush; the request (or CLI command) commits once."""
