"""Accounts: people and their roles, sign-in sessions, personal access tokens, the audit log."""
