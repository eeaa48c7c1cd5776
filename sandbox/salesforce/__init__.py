"""The Salesforce REST emulator: an ``App`` for the sandbox server over an org built from the book."""

from sandbox.salesforce.app import SalesforceApp

__all__ = ["SalesforceApp"]
