"""Periodic reports (monthly, quarterly, annual; CSV and XLSX) and the streaming transaction export."""
