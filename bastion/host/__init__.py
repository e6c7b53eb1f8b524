"""The host half: connection (pinned host keys), facts (one round trip), desired, plan,
apply (atomic, sshd -t, rollback timer), stage."""
