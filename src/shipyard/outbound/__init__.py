"""Outbound HTTP: the one client and provider-API layer every remote call goes through."""
