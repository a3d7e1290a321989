"""Speaking the remote jobs API: its value types, wire format, client, retries and the poller. No UI."""
