//! Personio (webhooks). Built by the Personio helper; see the issue-27 brief.
