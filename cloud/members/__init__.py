"""Members at the hub: their cards, their personal data (encrypted per member), erasure, import."""
