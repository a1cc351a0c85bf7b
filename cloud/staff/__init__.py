"""Staff at the hub: their accounts and badges (sent to every box in the member directory), and the chain's
blocklist (published whole, signed, retained)."""
