"""The AWS stage alone: `provision` (create or repair) and `destroy` (remove what this name made)."""

from __future__ import annotations

from bastion.aws.destroy import destroy_aws
from bastion.aws.stage import apply_aws
from bastion.config.settings import Settings
from bastion.pipeline.locate import before_aws
from bastion.pipeline.outcome import Outcome
from bastion.progress import Progress


def provision(settings: Settings, progress: Progress, *, replace: bool = False) -> Outcome:
    """Make AWS match the config; an ssh_port change's old port closes once sshd answers on
    the new one (`up` waits for a verified tunnel instead)."""
    target = before_aws(settings)
    made, facts = apply_aws(settings, target.session, progress, replace=replace)
    target.see(facts)
    return Outcome(plan=made, bastion=target.bastion_json(None))


def destroy(settings: Settings, progress: Progress) -> Outcome:
    return Outcome(plan=destroy_aws(settings, before_aws(settings).session, progress))
