"""The benchmark of issue 7: bastion's commands timed on the lab, beside an Ansible peer.

Run it with `invoke bench` (or `python -m bench.run`); see bench/README.md.
"""
