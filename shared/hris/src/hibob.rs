//! HiBob (v2 webhooks). Built by the HiBob helper; see the issue-27 brief.
