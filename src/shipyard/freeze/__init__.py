"""Freeze windows: tenant periods closed to deployments (recurring or fixed), with audited overrides."""
