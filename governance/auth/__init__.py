"""People and machines: passwords, API tokens and sessions, and who may do what (casbin)."""
