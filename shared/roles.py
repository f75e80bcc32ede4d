"""The platform roles, free of any web or crypto library (domain models import them).

`admin` passes every role check; `manager`, `operator` and `viewer` are the others. Access
tokens carry them in the `roles` claim; `shared.auth.require_roles` checks them per route.
"""

ROLES = ("admin", "manager", "operator", "viewer")

__all__ = ["ROLES"]
