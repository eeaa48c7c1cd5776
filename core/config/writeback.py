"""What the agent writes into each CRM, and the rules for tasks. (First version; writeback extends it.)"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from core.config.base import StrictModel


def _custom_salesforce_field(name: str) -> str:
    if not name.endswith("__c"):
        raise ValueError(f"a custom Salesforce field must end in __c (got {name!r})")
    return name


SalesforceCustomField = Annotated[str, AfterValidator(_custom_salesforce_field)]


class SalesforceWritebackConfig(StrictModel):
    object: str = "Account"
    fields: dict[str, SalesforceCustomField] = {}


class WritebackConfig(StrictModel):
    enabled: bool = True
    salesforce: SalesforceWritebackConfig = SalesforceWritebackConfig()
