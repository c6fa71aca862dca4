"""The application's services, built once by the composition root and shared by requests."""

from __future__ import annotations

from dataclasses import dataclass

from service.cases import CaseService
from service.config import Settings
from service.finance import FinanceService
from service.labels import LabelService
from service.mail import Mailer
from service.notifications import Notifications
from service.photos import PhotoService
from service.policy import PolicyBook
from service.portal import PortalService
from service.ports import CarrierWebhook, Database, WebhookVerifier
from service.refunds import RefundService
from service.tracking import Tracking
from service.worker import Worker


@dataclass
class Services:
    settings: Settings
    db: Database
    policies: PolicyBook
    cases: CaseService
    refunds: RefundService
    notifications: Notifications
    mailer: Mailer
    photos: PhotoService
    finance: FinanceService
    worker: Worker
    portal: PortalService
    webhook_verifier: WebhookVerifier | None  # None: no STRIPE_WEBHOOK_SECRET configured
    labels: LabelService
    tracking: Tracking
    carrier_webhook: CarrierWebhook | None = None  # None: no EASYPOST_WEBHOOK_SECRET (the simulated carrier sends none)
