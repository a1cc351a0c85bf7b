"""Audience feedback: the public NPS form per site, reached from the code on a ticket; complaint tickets.

`tickets` keeps each ticket's code on ingest; `answers` stores an answer (with `nps`, the rollup, `alerts`, a low
score's case, and `sealing`, the comment sealed); `complaints` and `report` handle complaints and their times;
`limits` rate-limits the public form; `categories` names what a complaint is about. docs/feedback.md."""
