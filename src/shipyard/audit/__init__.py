"""The audit trail's reading side: filters, export, streaming to syslog or a webhook, retention."""
