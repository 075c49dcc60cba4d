"""Entry point the Pulumi CLI runs for `--policy-pack policy`.

Every rule is mandatory: a violation fails `pulumi preview` and blocks
`pulumi up`. The rules live in microstack_policies.py.
"""

from microstack_policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="microstack",
    policies=POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
)
