"""Writeback: the plan (a diff of desired CRM values against the ledger), the CRM writers, tasks, provisioning."""
