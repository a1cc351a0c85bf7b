"""What a complaint is about, as the form offers it and the API takes it (fixed: reports compare them over time)."""

from __future__ import annotations

from typing import Final, Literal

Category = Literal["cleanliness", "picture_sound", "staff", "food_drink", "tickets_prices", "accessibility", "other"]
CATEGORIES: Final[dict[str, str]] = {
    "cleanliness": "Cleanliness",
    "picture_sound": "Picture or sound",
    "staff": "Staff and service",
    "food_drink": "Food and drink",
    "tickets_prices": "Tickets and prices",
    "accessibility": "Accessibility",
    "other": "Something else",
}
"""Every category, with the words the form shows."""

DEFAULT_RESPONSE_HOURS: Final = 48.0
"""A complaint's response deadline after it is opened, unless `complaint_response_hours` says otherwise."""
