"""Fraud control at the hub: alert cases, their delivery by e-mail and chat, the staff audit and reports."""
