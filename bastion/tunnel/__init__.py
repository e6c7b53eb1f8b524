"""verify: prove the tunnel as the tunnel user, hop by hop (tcp, ssh, forward, database),
with an ephemeral key installed beside the managed authorized_keys."""
