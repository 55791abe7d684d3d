//! BambooHR (event-based webhooks). Built by the BambooHR helper; see the issue-27 brief.
