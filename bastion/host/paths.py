"""The paths bastion keeps on the host: its state folder, and the file of verify's short-lived
keys beside each tunnel user's authorized_keys. (Names alone: a module that needs one of them
does not load the facts' parsers.)"""

STATE_DIR = "/var/lib/dbt-bastion"
MARKER = f"{STATE_DIR}/state.json"
ROLLBACK_TOKEN = f"{STATE_DIR}/rollback.pending"
VERIFY_KEYS_NAME = "authorized_keys.verify"
