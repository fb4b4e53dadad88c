"""Imports: CSV parsing, the bulk engine, import jobs, their API and pages."""
