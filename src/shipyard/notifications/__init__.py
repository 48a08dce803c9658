"""Notifications: channels (email, Slack, Teams, Discord, ntfy, webhook), rules and deliveries."""
