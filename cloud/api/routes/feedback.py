"""/api/v1/feedback and /api/v1/complaints: the audience's NPS and answers to the public form
(`feedback_answers`), and complaints as tickets (`complaints`)."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.routes import complaints, feedback_answers

router = APIRouter(tags=["feedback"])
router.include_router(feedback_answers.router)
router.include_router(complaints.router)
