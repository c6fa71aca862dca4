"""The application's services, built once by the composition root and shared by requests."""

from __future__ import annotations

from dataclasses import dataclass

from service.cases import CaseService
from service.config import Settings
from service.policy import PolicyBook
from service.ports import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    policies: PolicyBook
    cases: CaseService
