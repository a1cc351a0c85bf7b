"""Who may use the hub: users and roles, sessions, API tokens, lockout, and the audit log of HQ actions."""
