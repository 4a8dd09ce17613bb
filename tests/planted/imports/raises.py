"""A user module that raises at import."""
raise RuntimeError("this module cannot be imported")
