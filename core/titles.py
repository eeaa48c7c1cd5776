"""Seniority and department from a job title: used by connectors when they map contacts."""

from __future__ import annotations

import re

from core.records import Seniority

_RULES: tuple[tuple[Seniority, re.Pattern[str]], ...] = (
    (
        Seniority.C_LEVEL,
        re.compile(
            r"\b(c[a-z]o|chief|founder|co-founder|owner|president|managing director|geschäftsführer)\b"
            r"|代表|社長|取締役",
            re.IGNORECASE,
        ),
    ),
    (Seniority.VP, re.compile(r"\b(vp|svp|evp|vice[- ]president|head of|general manager|gm)\b", re.IGNORECASE)),
    (Seniority.DIRECTOR, re.compile(r"\b(director|directeur|direktor|leiter)\b", re.IGNORECASE)),
    (Seniority.MANAGER, re.compile(r"\b(manager|lead|supervisor|team lead|principal)\b", re.IGNORECASE)),
)

_DEPARTMENTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("executive", re.compile(r"\b(ceo|coo|president|founder|managing director|chief executive)\b", re.I)),
    ("engineering", re.compile(r"\b(cto|engineer\w*|developer|devops|architect|technology|it)\b", re.I)),
    ("finance", re.compile(r"\b(cfo|finance|financial|accounting|controller|procurement|purchasing)\b", re.I)),
    ("sales", re.compile(r"\b(cro|sales|account executive|business development|revenue)\b", re.I)),
    ("marketing", re.compile(r"\b(cmo|marketing|growth|brand|demand)\b", re.I)),
    ("operations", re.compile(r"\b(operations|ops|supply|logistics)\b", re.I)),
    ("product", re.compile(r"\b(cpo|product)\b", re.I)),
    ("support", re.compile(r"\b(support|success|service)\b", re.I)),
    ("hr", re.compile(r"\b(chro|hr|human resources|people|talent|recruit\w*)\b", re.I)),
    ("legal", re.compile(r"\b(legal|counsel|compliance)\b", re.I)),
)


def seniority_of(title: str | None) -> Seniority:
    """Map a job title to a seniority level; UNKNOWN for an empty title."""
    if not title or not title.strip():
        return Seniority.UNKNOWN
    for level, pattern in _RULES:
        if pattern.search(title):
            return level
    return Seniority.INDIVIDUAL


def department_of(title: str | None) -> str | None:
    """A coarse department from a job title, or None when nothing matches."""
    if not title:
        return None
    for name, pattern in _DEPARTMENTS:
        if pattern.search(title):
            return name
    return None
